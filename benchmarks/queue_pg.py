"""PostgreSQL's side of benchmarks/queue.py: the CPU time of processes (the workers and their
PostgreSQL backends), and procrastinate's floor.

The floor: `clients` processes, each a bare loop of the two statements procrastinate's worker
sends a job (its own `fetch_job` and `finish_job` queries, over one synchronous psycopg
connection like the worker pool's, commits not waiting for the WAL), on the same backlog as the
workers get. What PostgreSQL spends a job there, every procrastinate worker costs it at least;
what the loops spend is the least any Python client of those statements can.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import psycopg
from procrastinate import sql as procrastinate_sql

from benchmarks.queue_worker import fill
from bot.config import Settings
from bot.jobs.backends import migrate_command, open_database
from bot.jobs.procrastinate_policy import conninfo
from bot.jobs.queue import Queue


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User and system CPU time of each process (Linux /proc), by pid."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            found[pid] = (int(fields[11]) + int(fields[12])) / tick
    return found


def backends(queue: Queue, tag: str) -> list[int]:
    """The PostgreSQL backends of the worker processes (their application_name is `tag`)."""
    query = "SELECT pid FROM pg_stat_activity WHERE application_name = %(tag)s"
    with queue.store.engine.connect() as conn:  # type: ignore[attr-defined]
        return [int(pid) for pid in conn.exec_driver_sql(query, {"tag": tag}).scalars()]


def floor(url: str, clients: int, jobs: int, locks: int) -> dict[str, float]:
    """procrastinate's two statements a job, nothing else, from `clients` processes: jobs/s
    and the CPU a job took in the loops and in their PostgreSQL backends."""
    settings = Settings.load(database_url=url, queue_backend="procrastinate")
    with contextlib.redirect_stdout(io.StringIO()):
        migrate_command(settings)
    store, queue = open_database(settings)
    try:
        fill(queue, jobs, locks)
    finally:
        store.dispose()
    spawn = multiprocessing.get_context("spawn")
    results: Any = spawn.Queue()
    ready, go = spawn.Semaphore(0), spawn.Event()
    args = (conninfo(url), results, ready, go)
    loops = [spawn.Process(target=_loop, args=args) for _ in range(clients)]
    for process in loops:
        process.start()
    for _ in loops:
        ready.acquire(timeout=60)
    go.set()
    rows = [results.get(timeout=600) for _ in loops]
    for process in loops:
        process.join(60)
    done = sum(row["jobs"] for row in rows)
    client = sum(row["client_cpu"] for row in rows)
    backend = sum(row["backend_cpu"] for row in rows)
    span = max(row["end"] for row in rows) - min(row["start"] for row in rows)
    return {
        "jobs_per_s": round(done / span, 1),
        "cpu_ms_per_job": round((client + backend) * 1000 / done, 3),
        "worker_cpu_ms_per_job": round(client * 1000 / done, 3),
        "postgres_cpu_ms_per_job": round(backend * 1000 / done, 3),
        "cpu_bound_jobs_per_s": round((os.cpu_count() or 1) * done / (client + backend)),
    }


def _loop(dsn: str, results: Any, ready: Any, go: Event) -> None:
    fetch, finish = procrastinate_sql.queries["fetch_job"], procrastinate_sql.queries["finish_job"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        worker_id = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0]  # type: ignore[index]
        backend = conn.info.backend_pid
        ready.release()
        go.wait()
        before, backend_before, start, count = os.times(), cpu_seconds([backend]), time.time(), 0
        while True:
            row = conn.execute(fetch, {"queues": ["noop"], "worker_id": worker_id}).fetchone()
            if row is None or row[0] is None:
                break
            conn.execute(finish, {"job_id": row[0], "status": "succeeded", "delete_job": False})
            count += 1
        after, end = os.times(), time.time()
        spent = cpu_seconds([backend])[backend] - backend_before[backend]
    results.put(
        {
            "jobs": count,
            "client_cpu": after.user + after.system - before.user - before.system,
            "backend_cpu": spent,
            "start": start,
            "end": end,
        }
    )
