"""Memory and process-count limits for a sandbox: a cgroup per sandbox (v2 or v1, whichever this
host lets us write), else rlimits on the sandbox's first process."""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class CgroupSet:
    """The cgroup directories one sandbox's processes go into."""

    kind: str  # "v2", "v1" or "none"
    dirs: tuple[Path, ...]

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs]

    def memory_peak_bytes(self) -> int | None:
        for d in self.dirs:
            for name in ("memory.peak", "memory.max_usage_in_bytes"):
                with contextlib.suppress(OSError, ValueError):
                    return int((d / name).read_text())
        return None

    def oom_killed(self) -> bool:
        for d in self.dirs:
            with contextlib.suppress(OSError):
                events = (d / "memory.events").read_text()
                for line in events.splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
            with contextlib.suppress(OSError, ValueError):
                if int((d / "memory.failcnt").read_text()) > 0:
                    return True
        return False

    def kill_all(self) -> None:
        """Kill every process still in the sandbox's cgroups (the belt to bwrap's braces)."""
        for d in self.dirs:
            kill = d / "cgroup.kill"
            if kill.exists():
                with contextlib.suppress(OSError):
                    kill.write_text("1")
                continue
            with contextlib.suppress(OSError):
                for pid in (d / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(pid), 9)

    def remove(self) -> None:
        for d in self.dirs:
            with contextlib.suppress(OSError):
                d.rmdir()


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def detect(root: Path = CGROUP_ROOT) -> str:
    """Which cgroup interface this host lets us use: "v2", "v1" or "none"."""
    if (root / "cgroup.controllers").exists() and _writable(root):
        controllers = (root / "cgroup.controllers").read_text().split()
        if {"memory", "pids"} <= set(controllers):
            return "v2"
    if _writable(root / "memory") and _writable(root / "pids"):
        return "v1"
    return "none"


def create(
    memory_mib: int | None, max_processes: int | None, root: Path = CGROUP_ROOT
) -> CgroupSet:
    """A fresh cgroup (set) with the limits applied, or kind "none" when none can be made."""
    kind = detect(root)
    name = f"shipmate-{uuid.uuid4().hex[:12]}"
    try:
        if kind == "v2":
            parent = root / "shipmate"
            parent.mkdir(exist_ok=True)
            with contextlib.suppress(OSError):
                (parent / "cgroup.subtree_control").write_text("+memory +pids")
            group = parent / name
            group.mkdir()
            if memory_mib:
                (group / "memory.max").write_text(str(memory_mib * 1024 * 1024))
                with contextlib.suppress(OSError):
                    (group / "memory.swap.max").write_text("0")
            if max_processes:
                (group / "pids.max").write_text(str(max_processes))
            return CgroupSet("v2", (group,))
        if kind == "v1":
            memory = root / "memory" / "shipmate" / name
            pids = root / "pids" / "shipmate" / name
            memory.mkdir(parents=True)
            pids.mkdir(parents=True)
            if memory_mib:
                limit = str(memory_mib * 1024 * 1024)
                (memory / "memory.limit_in_bytes").write_text(limit)
                with contextlib.suppress(OSError):
                    (memory / "memory.memsw.limit_in_bytes").write_text(limit)
            if max_processes:
                (pids / "pids.max").write_text(str(max_processes))
            return CgroupSet("v1", (memory, pids))
    except OSError:
        pass
    return CgroupSet("none", ())
