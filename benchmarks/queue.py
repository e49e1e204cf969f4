"""The job queue's throughput and claim latency for no-op jobs, per backend, beside a baseline.

- SQLite (the default): the SQL queue with the worker inside the enqueuing process, as
  `shipmate serve` runs it (a job enqueued wakes the worker at once); "N workers" is N slots.
- PostgreSQL, procrastinate (what a PostgreSQL deployment runs): N `shipmate worker` processes
  (the runner bot/jobs/backends.py gives them, one slot each), enqueued from this process.
- PostgreSQL, the SQL queue (SHIPMATE_QUEUE_BACKEND=sql): the baseline, the same N worker
  processes, measured in the same run.

Each job is a no-op with a lock of one of `--locks` threads, as webhook jobs have. Jobs/s: a
backlog of `--jobs` jobs committed at once, from the first job started to the last. Claim
latency: from just before a job's enqueue to its start in a worker, enqueued one by one at
`--rate` jobs/s (below every backend's throughput, so no backlog builds), p50 and p99.
PostgreSQL is the one at 127.0.0.1:5432 (database `test`), each run in a fresh schema. Beside
them, the CPU time a job of the backlog took (the worker processes and their PostgreSQL
backends, or the one SQLite process) and the jobs/s that allows on this machine's CPUs with
nothing else running: on a shared machine the wall-clock figures move with the others' load.

Targets: >= 500 jobs/s on SQLite, >= 1,000 jobs/s on PostgreSQL (procrastinate) with 4
workers. Last line: one JSON object with the figures.

    .venv/bin/python benchmarks/queue.py [--jobs 5000] [--rate 200] [--seconds 3] [--locks 50]
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

import argparse
import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, text

from benchmarks.queue_worker import KIND, Started, fill, lock_of, recorder, runner_for
from bot.config import Settings
from bot.db import workers
from bot.jobs.backends import migrate_command, open_database
from bot.jobs.procrastinate_queue import ProcrastinateQueue
from bot.jobs.queue import Queue
from bot.logs import configure

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
WORKERS = (1, 4)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def done(queue: Queue) -> int:
    """No-op jobs finished (the workers' own periodic jobs are not counted)."""
    if isinstance(queue, ProcrastinateQueue):
        query = "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'noop'"
        query += " AND status = 'succeeded'"
    else:
        query = "SELECT count(*) FROM jobs WHERE kind = 'noop' AND state = 'done'"
    with queue.store.engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.exec_driver_sql(query).scalar() or 0)


def wait_done(queue: Queue, count: int, within: float = 600) -> None:
    deadline = time.monotonic() + within
    while done(queue) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"benchmark: only {done(queue)} of {count} jobs done in {within} s")
        time.sleep(0.05)


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


def figures(started: Started, cpu: float, jobs: int) -> dict[str, float]:
    backlog = [at for phase, _, at in started if phase == "backlog"]
    paced = [(at - t) * 1000 for phase, t, at in started if phase == "paced"]
    span = max(backlog) - min(backlog)
    return {
        "jobs_per_s": round((len(backlog) - 1) / span, 1) if span > 0 else float("nan"),
        "claim_p50_ms": round(pct(paced, 0.50), 2),
        "claim_p99_ms": round(pct(paced, 0.99), 2),
        # CPU time a job took (the workers and their PostgreSQL backends, or the one SQLite
        # process), and the jobs/s it allows on this machine's CPUs with nothing else running.
        "cpu_ms_per_job": round(cpu * 1000 / jobs, 3),
        "cpu_bound_jobs_per_s": round((os.cpu_count() or 1) * jobs / cpu) if cpu else 0,
    }


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield f"{PG}?options={quote(f'-csearch_path={name}')}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def paced_enqueue(queue: Queue, args: argparse.Namespace, base: int) -> int:
    """Open-loop: the i-th job is due at start + i/rate, whatever the earlier ones took."""
    count = int(args.rate * args.seconds)
    start = time.monotonic()
    for i in range(count):
        delay = start + i / args.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        payload = {"phase": "paced", "t": time.time()}
        queue.enqueue(KIND, payload, lock_key=lock_of(base + i, args.locks))
    return count


def in_process(settings: Settings, args: argparse.Namespace, slots: int) -> tuple[Started, float]:
    """SQLite: the worker in this process, woken by each enqueue, as in `shipmate serve`."""
    settings = settings.model_copy(update={"worker_concurrency": slots})
    store, queue = open_database(settings)
    started, noop = recorder()
    cpu = 0.0

    async def run() -> None:
        nonlocal cpu
        runner = runner_for(settings, store, queue, noop)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        await asyncio.to_thread(fill, queue, args.jobs, args.locks)
        before = os.times()
        runner.notify()
        await asyncio.to_thread(wait_done, queue, args.jobs)
        after = os.times()
        cpu = after.user + after.system - before.user - before.system
        count = int(args.rate * args.seconds)
        loop = asyncio.get_running_loop()
        begin = loop.time()
        for i in range(count):
            await asyncio.sleep(max(0.0, begin + i / args.rate - loop.time()))
            payload = {"phase": "paced", "t": time.time()}
            lock = lock_of(i, args.locks)
            await asyncio.to_thread(queue.enqueue, KIND, payload, lock_key=lock)
            runner.notify()
        await asyncio.to_thread(wait_done, queue, args.jobs + count)
        stop.set()
        await task

    try:
        asyncio.run(run())
    finally:
        store.dispose()
    return started, cpu


def processes(
    settings: Settings, args: argparse.Namespace, count: int, work: Path
) -> tuple[Started, float]:
    """PostgreSQL: `count` worker processes; this process enqueues."""
    with contextlib.redirect_stdout(io.StringIO()):
        migrate_command(settings)
    store, queue = open_database(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")}
    env.update(
        SHIPMATE_DATABASE_URL=settings.resolved_database_url,
        SHIPMATE_QUEUE_BACKEND=settings.queue_backend,
        SHIPMATE_WORKER_CONCURRENCY="1",
        SHIPMATE_WEBHOOK_CONCURRENCY="1",
        SHIPMATE_DATA_DIR=str(work),
        PGAPPNAME=f"shipmate-queue-bench-{uuid.uuid4().hex[:8]}",
    )
    outs = [work / f"worker{n}.json" for n in range(count)]
    script = str(Path(__file__).with_name("queue_worker.py"))
    running = [subprocess.Popen([sys.executable, script, str(out)], env=env) for out in outs]
    try:
        deadline = time.monotonic() + 60
        while len(workers.listed(store.engine)) < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in running):
                raise SystemExit("benchmark: the worker processes did not start")
            time.sleep(0.1)
        pids = [p.pid for p in running] + backends(queue, env["PGAPPNAME"])
        before = cpu_seconds(pids)
        fill(queue, args.jobs, args.locks)
        wait_done(queue, args.jobs)
        pids += [pid for pid in backends(queue, env["PGAPPNAME"]) if pid not in pids]
        cpu = sum(spent - before.get(pid, 0.0) for pid, spent in cpu_seconds(pids).items())
        paced = paced_enqueue(queue, args, args.jobs)
        wait_done(queue, args.jobs + paced)
    finally:
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            process.wait(60)
        store.dispose()
    started: Started = []
    for out in outs:
        started += [tuple(row) for row in json.loads(out.read_text())]  # type: ignore[misc]
    return started, cpu


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="shipmate-queue-bench-") as tmp:
        for n in WORKERS:
            data = Path(tmp) / f"sqlite{n}"
            settings = Settings.load(data_dir=data, webhook_concurrency=1)
            results.append({"database": "sqlite", "queue": "sql", "workers": n})
            results[-1].update(figures(*in_process(settings, args, n), args.jobs))
            print(line(results[-1]), flush=True)
        for backend in ("procrastinate", "sql"):
            for n in WORKERS:
                with pg_schema() as url:
                    work = Path(tmp) / f"{backend}{n}"
                    settings = Settings.load(database_url=url, queue_backend=backend, data_dir=work)
                    results.append({"database": "postgresql", "queue": backend, "workers": n})
                    results[-1].update(figures(*processes(settings, args, n, work), args.jobs))
                    print(line(results[-1]), flush=True)
    return results


def line(result: dict[str, Any]) -> str:
    name = f"{result['database']} {result['queue']}"
    return (
        f"{name:<26} {result['workers']} worker{'s' if result['workers'] > 1 else ' '}"
        f"  {result['jobs_per_s']:>8.0f} jobs/s   claim p50 {result['claim_p50_ms']:>6.1f} ms"
        f"  p99 {result['claim_p99_ms']:>6.1f} ms   CPU {result['cpu_ms_per_job']:.2f} ms a job"
        f" (at most {result['cpu_bound_jobs_per_s']:.0f} jobs/s on {os.cpu_count()} CPUs)"
    )


def targets(results: list[dict[str, Any]]) -> dict[str, bool]:
    def rate(database: str, queue: str, workers: int) -> float:
        for r in results:
            if (r["database"], r["queue"], r["workers"]) == (database, queue, workers):
                return float(r["jobs_per_s"])
        return 0.0

    met = {
        "sqlite_500_jobs_per_s": all(rate("sqlite", "sql", n) >= 500 for n in WORKERS),
        "postgresql_4_workers_1000_jobs_per_s": rate("postgresql", "procrastinate", 4) >= 1000,
    }
    for name, ok in met.items():
        print(f"target {name}: {'met' if ok else 'MISSED'}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000, help="backlog size per measurement")
    parser.add_argument("--rate", type=float, default=200, help="paced enqueues a second")
    parser.add_argument("--seconds", type=float, default=3, help="paced run's length")
    parser.add_argument("--locks", type=int, default=50, help="threads the jobs' locks name")
    args = parser.parse_args()
    configure("json", "warning")
    results = measure(args)
    met = targets(results)
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs (other work on this machine included)")
    print(json.dumps({"results": results, "targets": met, "cpus": os.cpu_count(), "load": load}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
