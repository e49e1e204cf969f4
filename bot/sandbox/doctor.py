"""`shipmate doctor`: which isolation features this host gives the sandbox, the uid sandboxes
run as, and whether tasks may run here: a real sandbox is started and attacked (it must not write
a kernel setting, and what it writes on the host must be the sandbox uid's)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path

from bot.sandbox import identity, limits
from bot.sandbox.base import Limits, SandboxSpec, SandboxUnavailable

# Writes a kernel setting its own value back: harmless when it succeeds, which it must not.
PROBE = "echo probe > probe; cat /proc/sys/kernel/panic > /proc/sys/kernel/panic && echo WROTE"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


async def _probe(user: identity.SandboxIdentity) -> str | None:
    """None when a sandbox starts and holds, else why tasks may not run."""
    from bot.sandbox.bwrap import BwrapSandbox

    with tempfile.TemporaryDirectory(prefix="shipmate-doctor-") as folder:
        spec = SandboxSpec(workspace=Path(folder), limits=Limits(timeout_seconds=30))
        try:
            async with BwrapSandbox(spec, user=user) as sandbox:
                result = await sandbox.exec(["sh", "-c", PROBE])
        except SandboxUnavailable as exc:
            return f"a sandbox cannot start: {exc}"
        if b"WROTE" in result.stdout:
            return "a sandbox could write /proc/sys/kernel/panic: its root is host root"
        written = Path(folder) / "probe"
        if not written.exists():
            return f"a sandbox could not write its workspace: {result.stderr.decode()[-300:]}"
        owner = written.stat().st_uid
        if owner != user.uid or owner == 0:
            return f"a sandbox's file on the host belongs to uid {owner}, not {user.uid}"
    return None


def tasks(user: identity.SandboxIdentity | None) -> tuple[bool, str]:
    """(may tasks run, why) for this host and settings."""
    if user is None:
        return False, "no sandbox uid (see above)"
    reason = asyncio.run(_probe(user))
    if reason is not None:
        return False, reason
    return True, f"a sandbox started as {user.uid}, kept /proc/sys read-only, wrote as its uid"


def _bwrap_checks() -> tuple[str | None, list[tuple[str, bool, str]]]:
    """bubblewrap and the namespaces it can make: (its path, the rows)."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        missing = "not installed: apt-get install bubblewrap"
        return None, [("bubblewrap", False, missing), ("namespaces", False, "bwrap missing")]
    version = subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip()
    probe = subprocess.run(
        [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
        capture_output=True,
        text=True,
    )
    userns = probe.returncode == 0
    detail = "user, pid, net, ipc, uts, mount namespaces" if userns else probe.stderr.strip()
    return bwrap, [("bubblewrap", True, version), ("namespaces", userns, detail)]


def _tool(name: str, feature: str, package: str) -> tuple[str, bool, str]:
    found = shutil.which(name)
    return feature, bool(found), found or f"missing: apt-get install {package}"


def checks() -> list[tuple[str, bool, str]]:
    """(feature, available, detail) for each isolation feature."""
    bwrap, found = _bwrap_checks()
    max_userns = _read("/proc/sys/user/max_user_namespaces") or "?"
    found.append(("user namespaces allowed", max_userns not in ("0", "?"), f"max {max_userns}"))
    kind = limits.detect()
    cgroups = {"v2": "v2 (memory, pids)", "v1": "v1 (memory, pids)"}
    found.append(("cgroups", kind != "none", cgroups.get(kind, "not writable: rlimits only")))
    seccomp = _read("/proc/sys/kernel/seccomp/actions_avail")
    found.append(("seccomp", seccomp is not None, seccomp or "not available"))
    found.append(_tool("unshare", "util-linux (unshare)", "util-linux"))
    found.append(_tool("skopeo", "skopeo (environments)", "skopeo"))
    user: identity.SandboxIdentity | None = None
    try:
        user = identity.current()
        found.append(("sandbox uid", True, user.describe()))
    except SandboxUnavailable as exc:
        found.append(("sandbox uid", False, str(exc)))
    found.append(("tasks may run", *tasks(user if bwrap else None)))
    return found


def doctor() -> int:
    rows = checks()
    width = max(len(name) for name, _, _ in rows)
    for name, ok, detail in rows:
        print(f"{'ok ' if ok else 'NO '} {name:<{width}}  {detail}")
    essential = {"bubblewrap", "namespaces", "util-linux (unshare)", "sandbox uid", "tasks may run"}
    return 0 if all(ok for name, ok, _ in rows if name in essential) else 1
