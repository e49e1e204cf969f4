"""The queue on PostgreSQL (procrastinate), in-process, on a fresh schema per test: the intake's
one transaction, replays, locks, abort, retries, shutdown drain, recovery of a dead worker's
jobs, and the dashboard's view of dead jobs (retry, drop)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.config import Settings
from bot.db import workers
from bot.db.deliveries import Delivery
from bot.db.migrations import SchemaNotReady
from bot.db.store import SCHEMA_VERSION, Store
from bot.jobs.backends import make_runner, migrate_command, open_database
from bot.jobs.procrastinate_queue import ProcrastinateQueue
from bot.jobs.procrastinate_worker import ProcrastinateWorker
from bot.jobs.queue import Job
from bot.jobs.worker import JobContext, JobHandler, JobRejected
from tests.dbs import postgres_available, postgres_schema


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    if not postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required in CI")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running")
    with postgres_schema() as url:
        yield Settings.load(
            database_url=url,
            data_dir=tmp_path / "data",
            worker_concurrency=2,
            worker_heartbeat_seconds=0.5,
            worker_stalled_seconds=2,
            worker_grace_seconds=0.5,
            job_max_attempts=2,
        )


@pytest.fixture
def database(settings: Settings) -> Iterator[tuple[Store, ProcrastinateQueue]]:
    migrate_command(settings)
    store, queue = open_database(settings)
    assert isinstance(queue, ProcrastinateQueue)
    yield store, queue
    store.dispose()


def _states(queue: ProcrastinateQueue) -> dict[int, str]:
    with queue.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id, status FROM procrastinate_jobs WHERE task_name NOT LIKE 'shipmate.%%'"
        )
        return {int(job_id): str(status) for job_id, status in rows}


async def _until(predicate: Callable[[], bool], within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


class Running:
    """A ProcrastinateWorker running in this event loop until `stop()`."""

    def __init__(self, runner: ProcrastinateWorker) -> None:
        self.runner = runner
        self.stopping = asyncio.Event()
        self.task = asyncio.create_task(runner.run(self.stopping))

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.wait_for(self.task, 20)


def _runner(
    settings: Settings, store: Store, queue: ProcrastinateQueue, handlers: dict[str, JobHandler]
) -> ProcrastinateWorker:
    runner = make_runner(settings, store, queue, handlers)
    assert isinstance(runner, ProcrastinateWorker)
    return runner


def test_serve_and_worker_refuse_an_unmigrated_or_newer_database(settings: Settings) -> None:
    with pytest.raises(SchemaNotReady, match=r"not migrated .*run `shipmate migrate`"):
        open_database(settings)
    assert migrate_command(settings) == 0
    store, _ = open_database(settings)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE schema_versions SET version = '99' WHERE part = 'shipmate'")
    store.dispose()
    newer = rf"newer than this Shipmate's {SCHEMA_VERSION}: upgrade Shipmate"
    with pytest.raises(SchemaNotReady, match=newer):
        open_database(settings)


def test_the_cli_says_what_to_run_and_exits_2(settings: Settings) -> None:
    env = {
        **os.environ,
        "SHIPMATE_DATABASE_URL": settings.resolved_database_url,
        "SHIPMATE_DATA_DIR": str(settings.data_dir),
    }

    def shipmate(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "bot.cli", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    def refusal(*args: str) -> str:
        refused = shipmate(*args)
        assert refused.returncode == 2, refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        return line

    serve = ("serve", "--no-worker", "--workers", "1", "--port", "0")
    for command in (("worker",), serve):
        line = refusal(*command)
        assert line.startswith("shipmate: the database is not migrated")
        assert line.endswith("run `shipmate migrate`")
    migrated = shipmate("migrate")
    assert migrated.returncode == 0 and "procrastinate none -> " in migrated.stdout
    again = shipmate("migrate")
    assert again.returncode == 0 and "already up to date" in again.stdout
    # Migrated by a newer Shipmate: neither starts, and migrate does not downgrade it.
    store, _ = open_database(settings)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE schema_versions SET version = '99' WHERE part = 'shipmate'")
    store.dispose()
    for command in (("worker",), serve, ("migrate",)):
        line = refusal(*command)
        assert line.startswith("shipmate: the database's shipmate schema is version 99")
        assert line.endswith("upgrade Shipmate before starting it")


def test_a_delivery_and_its_job_commit_together(
    database: tuple[Store, ProcrastinateQueue],
) -> None:
    store, queue = database
    batch = [
        Delivery("d1", "issues", "opened", b'{"a": 1}', True, 7, "o/r"),
        Delivery("d1", "issues", "opened", b'{"a": 1}', True, 7, "o/r"),
        Delivery("d2", "ping", None, b"{}", False),
    ]
    assert queue.enqueue_deliveries(batch) == ["queued", "duplicate", "ignored"]
    assert queue.enqueue_deliveries(batch[:1]) == ["duplicate"]
    assert queue.counts() == {"waiting": 1}
    stored = store.get_delivery("d1")
    assert stored is not None and stored.payload == b'{"a": 1}'
    # A failure half-way (here: the job's insert) leaves neither the delivery nor its job.
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE procrastinate_jobs ADD CHECK (args->>'repo' <> 'bad')")
    with pytest.raises(Exception, match="check"):
        queue.enqueue_deliveries([Delivery("d3", "issues", "opened", b"{}", True, 7, "bad")])
    assert store.get_delivery("d3") is None and queue.counts() == {"waiting": 1}


def test_a_body_replayed_under_a_new_delivery_id_is_a_duplicate(
    database: tuple[Store, ProcrastinateQueue],
) -> None:
    store, queue = database
    body = b'{"action": "opened"}'
    first = Delivery("d1", "issues", "opened", body, True, 7, "o/r", 3, digest="ab" * 32)
    replay = Delivery("d9", "issues", "opened", body, True, 7, "o/r", 3, digest="ab" * 32)
    assert queue.enqueue_deliveries([first]) == ["queued"]
    assert queue.enqueue_deliveries([replay]) == ["duplicate"]
    assert store.get_delivery("d9") is None and queue.counts() == {"waiting": 1}


def _fail(queue: ProcrastinateQueue, job_id: int | None) -> None:
    """The job as a worker leaves it after its last attempt."""
    with queue.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %(id)s", {"id": job_id}
        )
        conn.exec_driver_sql(
            "UPDATE procrastinate_jobs SET status = 'failed', attempts = 1 WHERE id = %(id)s",
            {"id": job_id},
        )


def test_the_dashboard_sees_dead_jobs_and_only_they_are_retried_or_dropped(
    database: tuple[Store, ProcrastinateQueue],
) -> None:
    store, queue = database
    queue.enqueue_deliveries([Delivery("d1", "issues", "opened", b"{}", True, 7, "o/r", 3)])
    store.set_delivery_status("d1", "failed", "RuntimeError: boom")
    (webhook_id,) = _states(queue)
    locked = queue.enqueue("run", {"n": 1}, queueing_lock="o/r#1", max_attempts=4)
    waiting = queue.enqueue("run", {"n": 2})
    _fail(queue, webhook_id)
    _fail(queue, locked)
    shown = {job["id"]: job for job in queue.browse()}
    assert [job["state"] for job in queue.browse()] == ["waiting", "dead", "dead"]  # newest first
    assert shown[webhook_id]["last_error"] == "RuntimeError: boom"
    assert shown[webhook_id]["lock_key"] == "delivery:o/r#3"
    assert (shown[webhook_id]["attempts"], shown[webhook_id]["max_attempts"]) == (2, 2)
    assert (shown[locked or 0]["attempts"], shown[locked or 0]["max_attempts"]) == (2, 4)
    # Neither a waiting job nor a missing one is dead.
    assert not queue.retry_dead(waiting or 0) and not queue.drop_dead(waiting or 0)
    assert not queue.retry_dead(10**9) and not queue.drop_dead(10**9)
    # A job of its queueing lock already waits: that one will do the work.
    again = queue.enqueue("run", {"n": 3}, queueing_lock="o/r#1")
    assert again is not None and not queue.retry_dead(locked or 0)
    assert _states(queue)[locked or 0] == "failed"
    assert queue.drop_dead(locked or 0) and _states(queue)[locked or 0] == "cancelled"
    assert queue.retry_dead(webhook_id)
    assert _states(queue)[webhook_id] == "todo"
    assert {job["id"]: job["attempts"] for job in queue.browse()}[webhook_id] == 0
    assert not queue.retry_dead(webhook_id)


@pytest.mark.anyio
async def test_a_rejected_job_is_dead_at_once_and_runs_again_when_retried(
    settings: Settings, database: tuple[Store, ProcrastinateQueue]
) -> None:
    store, queue = database
    attempts: list[int] = []
    mended = asyncio.Event()

    async def picky(job: Job, context: JobContext) -> None:
        attempts.append(job.attempts)
        if not mended.is_set():
            raise JobRejected("not a payload this kind takes")

    job_id = queue.enqueue("run", {})
    running = Running(_runner(settings, store, queue, {"run": picky}))
    await _until(lambda: _states(queue)[job_id or 0] == "failed")
    assert attempts == [1]  # job_max_attempts=2, but no retry would mend it
    mended.set()
    assert queue.retry_dead(job_id or 0)
    await _until(lambda: _states(queue)[job_id or 0] == "succeeded")
    await running.stop()
    assert attempts == [1, 1]  # counted from zero again


def test_queueing_lock_keeps_one_waiting_and_abort_cancels_it(
    database: tuple[Store, ProcrastinateQueue],
) -> None:
    _, queue = database
    first = queue.enqueue("run", {"n": 1}, lock_key="o/r#1", queueing_lock="o/r#1")
    assert first is not None
    assert queue.enqueue("run", {"n": 2}, lock_key="o/r#1", queueing_lock="o/r#1") is None
    assert queue.enqueue("run", {"n": 3}, lock_key="o/r#2", queueing_lock="o/r#2") is not None
    assert not queue.running("o/r#1")
    assert queue.request_abort(lock_key="o/r#1") == 1
    assert _states(queue)[first] == "cancelled"
    assert queue.request_abort(lock_key="o/r#1") == 0
    with pytest.raises(ValueError):
        queue.request_abort()


@pytest.mark.anyio
async def test_jobs_of_one_lock_never_overlap_and_a_stop_reaches_the_running_one(
    settings: Settings, database: tuple[Store, ProcrastinateQueue]
) -> None:
    store, queue = database
    active: dict[str, int] = {}
    overlaps: list[str] = []
    stopped: list[int] = []

    async def run(job: Job, context: JobContext) -> None:
        key = str(job.lock_key)
        active[key] = active.get(key, 0) + 1
        overlaps.extend([key] if active[key] > 1 else [])
        try:
            for _ in range(200 if job.payload.get("long") else 3):
                if context.should_abort():
                    stopped.append(job.id)
                    return
                await asyncio.sleep(0.02)
        finally:
            active[key] -= 1

    long_job = queue.enqueue("run", {"long": True}, lock_key="o/r#9")
    ids = [queue.enqueue("run", {"n": n}, lock_key=f"o/r#{n % 3}") for n in range(12)]
    running = Running(_runner(settings, store, queue, {"run": run}))
    await _until(lambda: all(_states(queue)[i] == "succeeded" for i in ids if i is not None))
    assert queue.running("o/r#9")
    assert queue.request_abort(lock_key="o/r#9") == 1
    await _until(lambda: _states(queue)[long_job or 0] == "aborted")
    await running.stop()
    assert overlaps == [] and stopped == [long_job]


@pytest.mark.anyio
async def test_failures_retry_then_stay_failed(
    settings: Settings, database: tuple[Store, ProcrastinateQueue]
) -> None:
    store, queue = database
    attempts: list[int] = []

    async def boom(job: Job, context: JobContext) -> None:
        attempts.append(job.attempts)
        raise RuntimeError("nope")

    job_id = queue.enqueue("run", {})
    running = Running(_runner(settings, store, queue, {"run": boom}))
    await _until(lambda: _states(queue)[job_id or 0] == "failed")
    await running.stop()
    assert attempts == [1, 2]  # job_max_attempts=2


@pytest.mark.anyio
async def test_sigterm_drains_a_running_job_back_to_the_queue(
    settings: Settings, database: tuple[Store, ProcrastinateQueue]
) -> None:
    store, queue = database
    started = asyncio.Event()

    async def slow(job: Job, context: JobContext) -> None:
        started.set()
        await asyncio.sleep(60)

    job_id = queue.enqueue("run", {})
    running = Running(_runner(settings, store, queue, {"run": slow}))
    await asyncio.wait_for(started.wait(), 20)
    # The load goes to the workers table at each heartbeat.
    await _until(lambda: [w["running"] for w in workers.listed(store.engine)] == [1])
    await running.stop()  # the grace time is 0.5 s
    assert _states(queue)[job_id or 0] == "todo"
    assert workers.listed(store.engine) == []


@pytest.mark.anyio
async def test_a_dead_workers_job_is_recovered_and_runs_again(
    settings: Settings, database: tuple[Store, ProcrastinateQueue]
) -> None:
    store, queue = database
    done: list[int] = []

    async def run(job: Job, context: JobContext) -> None:
        done.append(job.attempts)

    job_id = queue.enqueue("run", {})
    # A worker that fetched the job and then died: its heartbeat stops.
    with store.engine.begin() as conn:
        dead = conn.exec_driver_sql(
            "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour')"
            " RETURNING id"
        ).scalar()
        conn.exec_driver_sql(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %(w)s WHERE id = %(id)s",
            {"w": dead, "id": job_id},
        )
    running = Running(_runner(settings, store, queue, {"run": run}))
    await _until(lambda: _states(queue)[job_id or 0] == "succeeded")
    await running.stop()
    assert done == [2]
