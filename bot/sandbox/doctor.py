"""`shipmate doctor`: which isolation features this host gives the sandbox."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bot.sandbox import limits


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def checks() -> list[tuple[str, bool, str]]:
    """(feature, available, detail) for each isolation feature."""
    found: list[tuple[str, bool, str]] = []
    bwrap = shutil.which("bwrap")
    version = ""
    if bwrap:
        version = subprocess.run(
            [bwrap, "--version"], capture_output=True, text=True
        ).stdout.strip()
    found.append(
        ("bubblewrap", bool(bwrap), version or "not installed: apt-get install bubblewrap")
    )
    userns = False
    detail = "bwrap missing"
    if bwrap:
        probe = subprocess.run(
            [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
            capture_output=True,
            text=True,
        )
        userns = probe.returncode == 0
        detail = "user, pid, net, ipc, uts, mount namespaces" if userns else probe.stderr.strip()
    found.append(("namespaces", userns, detail))
    max_userns = _read("/proc/sys/user/max_user_namespaces") or "?"
    found.append(("user namespaces allowed", max_userns not in ("0", "?"), f"max {max_userns}"))
    kind = limits.detect()
    found.append(
        (
            "cgroups",
            kind != "none",
            {"v2": "v2 (memory, pids)", "v1": "v1 (memory, pids)"}.get(
                kind, "not writable: rlimits only"
            ),
        )
    )
    seccomp = _read("/proc/sys/kernel/seccomp/actions_avail")
    found.append(("seccomp", seccomp is not None, seccomp or "not available"))
    unshare = shutil.which("unshare")
    found.append(
        ("util-linux (unshare)", bool(unshare), unshare or "missing: apt-get install util-linux")
    )
    return found


def doctor() -> int:
    rows = checks()
    width = max(len(name) for name, _, _ in rows)
    for name, ok, detail in rows:
        print(f"{'ok ' if ok else 'NO '} {name:<{width}}  {detail}")
    essential = {"bubblewrap", "namespaces", "util-linux (unshare)"}
    return 0 if all(ok for name, ok, _ in rows if name in essential) else 1
