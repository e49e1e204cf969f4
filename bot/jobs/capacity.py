"""How many tasks a worker takes at once, and how it tells the dashboard its capacity and load.

A run's cost on a host is its sandbox: each may use up to `Limits.memory_mib` of memory
(the cgroup's limit), while the model's turns and GitHub's calls are mostly waiting. So the
host's memory decides how many runs fit, and its CPUs only cap it (a run's tests are CPU).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from bot.db import workers
from bot.db.store import Store
from bot.sandbox.base import Limits

log = structlog.get_logger("shipmate.capacity")

# Left to the host (the worker itself, the page cache, git) before sandboxes are counted.
RESERVED_MIB = 512
# Runs per CPU at most: a run spends most of its time waiting for the model.
RUNS_PER_CPU = 4


def _meminfo_mib(name: str, meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_limit_mib(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """This process's cgroup memory limit (v2 `memory.max`, v1 `memory.limit_in_bytes`)."""
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            text = (root / name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 says "no limit" with a huge number
            return int(text) // (1024 * 1024)
    return None


def available_mib() -> int | None:
    """Memory this worker may give its sandboxes: the smaller of what the host has available
    and the limit of the cgroup it runs in (a container's)."""
    known = [m for m in (_meminfo_mib("MemAvailable"), _cgroup_limit_mib()) if m is not None]
    return min(known) if known else None


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def host_capacity(memory_per_task_mib: int | None = None) -> int:
    """Tasks (runs) this host can take at once: as many sandboxes as fit in its memory, at
    most RUNS_PER_CPU per CPU, at least one."""
    per_task = memory_per_task_mib or Limits.memory_mib or 2048
    by_cpu = RUNS_PER_CPU * cpus()
    memory = available_mib()
    if memory is None:
        return max(1, min(by_cpu, 2))
    return max(1, min(by_cpu, (memory - RESERVED_MIB) // per_task))


@dataclass
class Load:
    """A worker's slots and how many are taken, as the `workers` table shows them."""

    capacity: int
    backend: str
    running: int = 0
    state: str = "running"
    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
    )
    started_at: float = field(default_factory=time.time)

    def report(self, store: Store) -> None:
        workers.report(
            store.engine,
            self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            backend=self.backend,
            capacity=self.capacity,
            running=self.running,
            state=self.state,
            started_at=self.started_at,
        )


async def report_load(store: Store, load: Load, stop: asyncio.Event, seconds: float) -> None:
    """Write `load` to the workers table every `seconds` until `stop` (the worker removes its
    row once drained): the dashboard's queue page reads who is up, their capacity and their
    running jobs. A worker killed outright leaves its row to go stale (its heartbeat says
    since when) until recovery prunes it."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(load.report, store)
        except Exception as exc:  # a missed beat is not worth stopping the worker
            log.warning("worker.report_failed", error=f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
