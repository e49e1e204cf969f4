"""The job queue's throughput and claim latency for no-op jobs, per backend, beside a baseline.

- SQLite (the default): the SQL queue with the worker inside the enqueuing process, as
  `shipmate serve` runs it (on uvloop; a job enqueued wakes the worker at once); "N workers"
  is N slots.
- PostgreSQL, procrastinate (what a PostgreSQL deployment runs): `shipmate worker` processes
  (bot/jobs/backends.py's runner, on uvloop), enqueued from this process. "4 workers" twice
  on a machine of fewer CPUs: 4 one-slot processes, and one process a CPU sharing the 4 slots
  (a deployment's shape: `shipmate worker` sizes its slots to the host).
- PostgreSQL, the SQL queue (SHIPMATE_QUEUE_BACKEND=sql): the baseline, the same worker
  processes, measured in the same run.
- PostgreSQL, procrastinate's SQL alone: its floor (benchmarks/queue_pg.py).

Each job is a no-op with a lock of one of `--locks` threads, as webhook jobs have. Jobs/s: a
backlog of `--jobs` jobs committed at once, from the first job started to the last. Claim
latency: from just before a job's enqueue to its start in a worker, enqueued one by one at
`--rate` jobs/s (below every backend's throughput, so no backlog builds), p50 and p99.
PostgreSQL is the one at 127.0.0.1:5432 (database `test`), each run in a fresh schema. Beside
them, the CPU time a job of the backlog took (the worker processes and their PostgreSQL
backends, each part too, or the one SQLite process) and the jobs/s that allows on this
machine's CPUs with nothing else running: on a shared machine the wall-clock figures move with
the others' load.

Targets: >= 500 jobs/s on SQLite, >= 1,000 jobs/s on PostgreSQL (procrastinate) with 4
workers, each layout told apart. Last line: one JSON object with the figures.

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
from pathlib import Path
from typing import Any

from benchmarks.queue_pg import backends, cpu_seconds, floor
from benchmarks.queue_worker import KIND, Started, fill, lock_of, recorder, runner_for
from bot.config import Settings
from bot.db import workers
from bot.jobs.backends import migrate_command, open_database, run_loop
from bot.jobs.procrastinate_queue import ProcrastinateQueue
from bot.jobs.queue import Queue
from bot.logs import configure
from tests.dbs import postgres_schema as pg_schema  # a URL on a fresh schema, dropped after

WORKERS = (1, 4)
CPUS = os.cpu_count() or 1


def layouts() -> list[tuple[int, int]]:
    """(processes, slots each) on PostgreSQL: each worker count as that many one-slot
    processes, and, past this machine's CPUs, as one process a CPU sharing the slots."""
    found = [(n, 1) for n in WORKERS]
    found += [(CPUS, n // CPUS) for n in WORKERS if n > CPUS and n % CPUS == 0]
    return found


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


def figures(started: Started, cpu: tuple[float, float], jobs: int) -> dict[str, float]:
    backlog = [at for phase, _, at in started if phase == "backlog"]
    paced = [(at - t) * 1000 for phase, t, at in started if phase == "paced"]
    span = max(backlog) - min(backlog)
    return {
        "jobs_per_s": round((len(backlog) - 1) / span, 1) if span > 0 else float("nan"),
        "claim_p50_ms": round(pct(paced, 0.50), 2),
        "claim_p99_ms": round(pct(paced, 0.99), 2),
        # CPU time a job took, and the jobs/s it allows on this machine's idle CPUs.
        "cpu_ms_per_job": round(sum(cpu) * 1000 / jobs, 3),
        "worker_cpu_ms_per_job": round(cpu[0] * 1000 / jobs, 3),
        "postgres_cpu_ms_per_job": round(cpu[1] * 1000 / jobs, 3),
        "cpu_bound_jobs_per_s": round(CPUS * jobs / sum(cpu)) if sum(cpu) else 0,
    }


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


def in_process(
    settings: Settings, args: argparse.Namespace, slots: int
) -> tuple[Started, tuple[float, float]]:
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
        run_loop(run())  # uvicorn runs `serve` on uvloop
    finally:
        store.dispose()
    return started, (cpu, 0.0)


def processes(
    settings: Settings, args: argparse.Namespace, layout: tuple[int, int], work: Path
) -> tuple[Started, tuple[float, float]]:
    """PostgreSQL: `count` worker processes of `slots` each; this process enqueues. The CPU
    time of the worker processes, and of their PostgreSQL backends."""
    count, slots = layout
    with contextlib.redirect_stdout(io.StringIO()):
        migrate_command(settings)
    store, queue = open_database(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")}
    env.update(
        SHIPMATE_DATABASE_URL=settings.resolved_database_url,
        SHIPMATE_QUEUE_BACKEND=settings.queue_backend,
        SHIPMATE_WORKER_CONCURRENCY=str(slots),
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
        spent = {pid: cpu - before.get(pid, 0.0) for pid, cpu in cpu_seconds(pids).items()}
        own = sum(spent.get(process.pid, 0.0) for process in running)
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
    return started, (own, sum(spent.values()) - own)


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="shipmate-queue-bench-") as tmp:
        for n in WORKERS:
            data = Path(tmp) / f"sqlite{n}"
            settings = Settings.load(data_dir=data, webhook_concurrency=1)
            results.append(row("sqlite", "sql", (1, n)))
            results[-1].update(figures(*in_process(settings, args, n), args.jobs))
            print(line(results[-1]), flush=True)
        for backend in ("procrastinate", "sql"):
            for layout in layouts():
                with pg_schema() as url:
                    work = Path(tmp) / f"{backend}{layout[0]}x{layout[1]}"
                    settings = Settings.load(database_url=url, queue_backend=backend, data_dir=work)
                    results.append(row("postgresql", backend, layout))
                    results[-1].update(figures(*processes(settings, args, layout, work), args.jobs))
                    print(line(results[-1]), flush=True)
        for clients in sorted({count for count, _ in layouts()}):
            with pg_schema() as url:
                results.append(row("postgresql", "procrastinate's SQL alone", (clients, 1)))
                results[-1].update(floor(url, clients, args.jobs, args.locks))
                print(line(results[-1]), flush=True)
    return results


def row(database: str, queue: str, layout: tuple[int, int]) -> dict[str, Any]:
    count, slots = layout
    return {"database": database, "queue": queue, "workers": count * slots, "layout": layout}


def line(result: dict[str, Any]) -> str:
    name = f"{result['database']} {result['queue']}"
    shape = "x".join(map(str, result["layout"]))  # processes x slots
    claims = ""
    if "claim_p50_ms" in result:  # the floor has no claims
        claims = (
            f"   claim p50 {result['claim_p50_ms']:>5.1f}  p99 {result['claim_p99_ms']:>5.1f} ms"
        )
    return (
        f"{name:<41} {result['workers']} worker{'s' if result['workers'] > 1 else ' '} ({shape})"
        f"  {result['jobs_per_s']:>6.0f} jobs/s{claims:<41}   CPU {result['cpu_ms_per_job']:.2f}"
        f" ms a job (workers {result['worker_cpu_ms_per_job']:.2f}"
        f" + PostgreSQL {result['postgres_cpu_ms_per_job']:.2f}), at most"
        f" {result['cpu_bound_jobs_per_s']:.0f} jobs/s on {CPUS} CPUs"
    )


def targets(results: list[dict[str, Any]]) -> dict[str, bool]:
    """SQLite's target, and PostgreSQL's for each layout of 4 workers: on the wall clock (4
    one-slot processes keep the key it always had), and by the CPU a job took."""
    sqlite = [r["jobs_per_s"] >= 500 for r in results if r["database"] == "sqlite"]
    met = {"sqlite_500_jobs_per_s": bool(sqlite) and all(sqlite)}
    for r in results:
        if r["queue"] == "procrastinate" and r["workers"] == 4:
            count, slots = r["layout"]
            name = "postgresql_4_workers" + ("" if slots == 1 else f"_{count}x{slots}")
            met[f"{name}_1000_jobs_per_s"] = r["jobs_per_s"] >= 1000
            met[f"{name}_cpu_allows_1000_jobs_per_s"] = r["cpu_bound_jobs_per_s"] >= 1000
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
    print(f"load average {load:.1f} on {CPUS} CPUs (other work on this machine included)")
    print(json.dumps({"results": results, "targets": met, "cpus": CPUS, "load": load}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
