"""How many runs a worker takes at once: as many sandboxes as the host's memory (or its
container's limit) holds, at most four a CPU, at least one; `--concurrency` (or
SHIPMATE_WORKER_CONCURRENCY) overrides it, and the webhook slots come on top."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from bot.db.store import Store
from bot.jobs import capacity
from bot.jobs.backends import make_runner
from bot.jobs.worker import Worker
from bot.sandbox.base import Limits
from tests.dbs import migrate_all


def test_a_containers_memory_limit_is_read_from_its_cgroup(tmp_path: Path) -> None:
    assert capacity._cgroup_limit_mib(tmp_path) is None  # no cgroup files: no limit known
    (tmp_path / "memory.max").write_text("max\n")
    assert capacity._cgroup_limit_mib(tmp_path) is None
    (tmp_path / "memory.max").write_text(f"{6 * 1024**3}\n")
    assert capacity._cgroup_limit_mib(tmp_path) == 6144
    (tmp_path / "memory.max").unlink()
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert capacity._cgroup_limit_mib(tmp_path) is None  # cgroup v1's "unlimited"
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 16384000 kB\nMemAvailable: 8388608 kB\n")
    assert capacity._meminfo_mib("MemAvailable", meminfo) == 8192


def test_smaller_sandboxes_fit_more_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity, "available_mib", lambda: 8192 + capacity.RESERVED_MIB)
    monkeypatch.setattr(capacity, "cpus", lambda: 8)
    assert capacity.host_capacity(memory_per_task_mib=1024) == 8


@pytest.mark.parametrize(
    ("memory_mib", "cpus", "expected"),
    [
        (8192 + capacity.RESERVED_MIB, 8, 4),  # four 2 GiB sandboxes fit
        (64 * 1024, 2, 8),  # memory to spare: four runs a CPU at most
        (1024, 8, 1),  # not even one fits: one all the same
        (None, 8, 2),  # memory unknown: two
    ],
)
def test_runs_are_sized_to_memory_and_cpus(
    monkeypatch: pytest.MonkeyPatch, memory_mib: int | None, cpus: int, expected: int
) -> None:
    monkeypatch.setattr(capacity, "available_mib", lambda: memory_mib)
    monkeypatch.setattr(capacity, "cpus", lambda: cpus)
    assert Limits().memory_mib == 2048
    assert capacity.host_capacity() == expected


def test_the_worker_takes_the_hosts_capacity_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capacity, "available_mib", lambda: 6144 + capacity.RESERVED_MIB)
    monkeypatch.setattr(capacity, "cpus", lambda: 4)
    settings = Settings.load(data_dir=tmp_path, webhook_concurrency=2)
    store = Store.from_settings(settings)
    queue = migrate_all(store)
    sized = make_runner(settings, store, queue, {})
    told = make_runner(settings.model_copy(update={"worker_concurrency": 7}), store, queue, {})
    store.dispose()
    assert isinstance(sized, Worker) and isinstance(told, Worker)
    assert (sized.concurrency, sized.load.capacity) == (3, 5)  # three runs, two webhook slots
    assert (told.concurrency, told.load.capacity) == (7, 9)
