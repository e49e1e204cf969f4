"""The worker side of benchmarks/queue.py: a no-op job handler that records when each job
started, the runner `shipmate serve` / `shipmate worker` would run (bot/jobs/backends.py's
make_runner, so the slots, heartbeats and locks are production's), and the bulk fill of a
backlog of no-op jobs in one transaction.

As a process (one `shipmate worker`), it runs until SIGTERM, then writes what it recorded:

    python benchmarks/queue_worker.py OUT.json   # settings from SHIPMATE_* in the environment
"""

# ruff: noqa: E402 (the imports wait for sys.path to be set right)
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder is first on sys.path, where this file would stand in for the
# standard library's `queue` (asyncio imports it): the checkout's root goes there instead.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import asyncio
import json
import time
from typing import Any

from procrastinate.types import JobToDefer
from psycopg.types.json import Jsonb
from sqlalchemy import insert

from bot.config import Settings
from bot.jobs.backends import Runner, make_runner, open_database, run_loop
from bot.jobs.procrastinate_queue import ProcrastinateQueue
from bot.jobs.queue import Job, Queue
from bot.jobs.sql import jobs as jobs_table
from bot.jobs.worker import JobContext, install_stop_signals
from bot.logs import configure

KIND = "noop"
# (phase, enqueued at, started at) of each job this process ran.
Started = list[tuple[str, float, float]]


def recorder() -> tuple[Started, Any]:
    started: Started = []

    async def noop(job: Job, context: JobContext) -> None:
        started.append((str(job.payload["phase"]), float(job.payload["t"]), time.time()))

    return started, noop


def runner_for(settings: Settings, store: Any, queue: Queue, handler: Any) -> Runner:
    return make_runner(settings, store, queue, {KIND: handler})


def lock_of(n: int, locks: int) -> str | None:
    """The lock of the n-th job: one of `locks` threads (issues and PRs), as webhook jobs have."""
    return f"bench/repo#{n % locks}" if locks else None


def fill(queue: Queue, count: int, locks: int) -> None:
    """`count` no-op jobs, committed at once, so every worker sees the whole backlog together."""
    now = time.time()
    if isinstance(queue, ProcrastinateQueue):
        rows = [
            JobToDefer(KIND, KIND, 0, lock_of(n, locks), None, Jsonb(_payload(now)), None)
            for n in range(count)
        ]
        with queue.engine.begin() as conn:
            for start in range(0, count, 1000):
                conn.exec_driver_sql(
                    "SELECT unnest(procrastinate_defer_jobs_v1("
                    "%(jobs)s::procrastinate_job_to_defer_v1[]))",
                    {"jobs": rows[start : start + 1000]},
                )
        analyze(queue, "procrastinate_jobs")
        return
    table_rows = [
        {
            "kind": KIND,
            "payload": _payload(now),
            "lock_key": lock_of(n, locks),
            "state": "waiting",
            "attempts": 0,
            "max_attempts": 3,
            "run_at": now,
            "abort_requested": False,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    engine = queue.store.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(insert(jobs_table), table_rows)
    analyze(queue, "jobs")


def analyze(queue: Queue, table: str) -> None:
    """The planner's statistics of the queue's table, as autovacuum keeps them on a database
    in use: a fresh schema has none, and the planner's guess for a table it never analysed
    makes each fetch read the whole backlog."""
    engine = queue.store.engine  # type: ignore[attr-defined]
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ANALYZE {table}")


def _payload(now: float) -> dict[str, Any]:
    return {"phase": "backlog", "t": now}


def main() -> int:
    out = Path(sys.argv[1])
    settings = Settings.load()
    configure("json", "warning")
    store, queue = open_database(settings)
    started, noop = recorder()

    async def run() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await runner_for(settings, store, queue, noop).run(stop)

    try:
        run_loop(run())  # as `shipmate worker` runs
    finally:
        store.dispose()
    out.write_text(json.dumps(started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
