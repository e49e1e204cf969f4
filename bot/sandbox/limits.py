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

    def join(self, pid: int) -> None:
        """Move process `pid` (the sandbox's namespace holder, before it starts any command)
        into every cgroup of the set. Done by Shipmate: the holder, the sandbox uid, may not."""
        for path in self.procs_files():
            with open(path, "w") as file:
                file.write(str(pid))

    def cpu_seconds(self) -> float | None:
        """CPU time used by every process that was ever in the cgroup (v2 `cpu.stat`, v1
        `cpuacct.usage` when there is a cpuacct cgroup), or None when it is not accounted."""
        if self.kind == "v2":
            with contextlib.suppress(OSError, ValueError):
                for line in _read(self.dirs[0] / "cpu.stat").splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value) / 1e6
        elif self.kind == "v1" and len(self.dirs) > 2:
            with contextlib.suppress(OSError, ValueError):
                return int(_read(self.dirs[2] / "cpuacct.usage")) / 1e9
        return None

    def memory_peak_bytes(self) -> int | None:
        for d in self.dirs:
            for name in ("memory.peak", "memory.max_usage_in_bytes"):
                with contextlib.suppress(OSError, ValueError):
                    return int((d / name).read_text())
        return None

    def oom_kills(self) -> int:
        """How many processes the cgroup's OOM killer has killed so far (it only counts up)."""
        if self.kind == "none":
            return 0
        # v2: memory.events; v1: memory.oom_control (memory.failcnt stays 0 when the
        # memory+swap limit is the one hit). The memory cgroup comes first in `dirs`.
        name = "memory.events" if self.kind == "v2" else "memory.oom_control"
        with contextlib.suppress(OSError, ValueError):
            for line in _read(self.dirs[0] / name).splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def kill_all(self, spare: int | None = None) -> None:
        """Kill every process still in the sandbox's cgroups (the belt to bwrap's braces) but
        `spare` (the namespace holder, which lives there too). Every process joins all of the
        set's cgroups, so the first one lists them all."""
        if self.kind == "none":
            return
        if self.kind == "v2" and spare is None:
            with contextlib.suppress(OSError):
                (self.dirs[0] / "cgroup.kill").write_text("1")  # since Linux 5.14
                return
        with contextlib.suppress(OSError):
            for pid in map(int, _read(self.dirs[0] / "cgroup.procs").split()):
                if pid != spare:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, 9)

    def remove(self) -> None:
        for d in self.dirs:
            with contextlib.suppress(OSError):
                d.rmdir()


def _read(path: Path) -> str:
    with open(path) as file:
        return file.read()


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


def own_path(controller: str, proc_self_cgroup: str) -> str:
    """This process's cgroup for `controller` ("" for the v2 hierarchy), from the text of
    /proc/self/cgroup."""
    for line in proc_self_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        names = controllers.split(",") if controllers else []
        if (not controller and not names) or controller in names:
            return path
    return "/"


def _parents(root: Path, controller: str, proc_self_cgroup: str) -> list[Path]:
    """Where to make sandbox cgroups: under our own cgroup (the service's, so its limits and
    accounting cover its sandboxes), else at the top of the hierarchy."""
    own = own_path(controller, proc_self_cgroup).strip("/")
    top = root / controller if controller else root
    return [top / own / "shipmate", top / "shipmate"] if own else [top / "shipmate"]


def _make_v2(parent: Path, name: str, memory_mib: int | None, max_processes: int | None) -> Path:
    parent.mkdir(exist_ok=True)
    with contextlib.suppress(OSError):
        (parent.parent / "cgroup.subtree_control").write_text("+memory +pids")
    with contextlib.suppress(OSError):
        (parent / "cgroup.subtree_control").write_text("+memory +pids")
    group = parent / name
    group.mkdir()
    try:
        if memory_mib:
            (group / "memory.max").write_text(str(memory_mib * 1024 * 1024))
            with contextlib.suppress(OSError):
                (group / "memory.swap.max").write_text("0")
        if max_processes:
            (group / "pids.max").write_text(str(max_processes))
    except OSError:
        group.rmdir()
        raise
    return group


def _make_v1(memory: Path, pids: Path, memory_mib: int | None, max_processes: int | None) -> None:
    memory.mkdir(parents=True)
    try:
        pids.mkdir(parents=True)
    except OSError:
        memory.rmdir()
        raise
    try:
        if memory_mib:
            limit = str(memory_mib * 1024 * 1024)
            (memory / "memory.limit_in_bytes").write_text(limit)
            with contextlib.suppress(OSError):
                (memory / "memory.memsw.limit_in_bytes").write_text(limit)
        if max_processes:
            (pids / "pids.max").write_text(str(max_processes))
    except OSError:
        memory.rmdir()
        pids.rmdir()
        raise


def _proc_self_cgroup() -> str:
    try:
        return Path("/proc/self/cgroup").read_text()
    except OSError:
        return ""


def create(
    memory_mib: int | None, max_processes: int | None, root: Path = CGROUP_ROOT
) -> CgroupSet:
    """A fresh cgroup (set) with the limits applied, or kind "none" when none can be made."""
    kind = detect(root)
    name = f"shipmate-{uuid.uuid4().hex[:12]}"
    mine = _proc_self_cgroup()
    if kind == "v2":
        for parent in _parents(root, "", mine):
            with contextlib.suppress(OSError):
                return CgroupSet("v2", (_make_v2(parent, name, memory_mib, max_processes),))
    if kind == "v1":
        memory_parents = _parents(root, "memory", mine)
        pids_parents = _parents(root, "pids", mine)
        # Ours first, then the top, for both controllers together.
        pairs = [(memory_parents[0], pids_parents[0]), (memory_parents[-1], pids_parents[-1])]
        for memory, pids in pairs:
            with contextlib.suppress(OSError):
                _make_v1(memory / name, pids / name, memory_mib, max_processes)
                return CgroupSet("v1", (memory / name, pids / name, *_cpuacct_v1(root, name, mine)))
    return CgroupSet("none", ())


def _cpuacct_v1(root: Path, name: str, proc_self_cgroup: str) -> tuple[Path, ...]:
    """A v1 cpuacct cgroup beside the memory and pids ones, for CPU accounting, where the
    host lets us make one (none is no failure: the limits do not depend on it)."""
    if not _writable(root / "cpuacct"):
        return ()
    for parent in _parents(root, "cpuacct", proc_self_cgroup):
        with contextlib.suppress(OSError):
            parent.mkdir(exist_ok=True)
            (parent / name).mkdir()
            return (parent / name,)
    return ()
