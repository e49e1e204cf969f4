from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from bot.db.store import Store
from bot.jobs.queue import Job
from bot.jobs.sql import SQLQueue
from bot.jobs.worker import JobContext, Worker
from tests.dbs import migrate_all

ROOT = Path(__file__).resolve().parent.parent


def _wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


@pytest.fixture
def queue(sqlite_url: str) -> SQLQueue:
    store = Store(sqlite_url, job_max_attempts=2)
    migrate_all(store)
    return SQLQueue(store)


@pytest.mark.anyio
async def test_handlers_run_fail_and_dead_letter(queue: SQLQueue) -> None:
    seen: list[int] = []

    async def ok(job: Job, context: JobContext) -> None:
        seen.append(job.payload["n"])

    async def boom(job: Job, context: JobContext) -> None:
        raise RuntimeError("nope")

    queue.enqueue("ok", {"n": 1})
    queue.enqueue("boom", {})
    queue.enqueue("mystery", {})
    worker = Worker(queue, {"ok": ok, "boom": boom})
    await worker.run_until_idle()
    with queue.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE jobs SET run_at = 0 WHERE state = 'waiting'")
    await worker.run_until_idle()
    assert seen == [1]
    counts = queue.counts()
    assert counts == {"done": 1, "dead": 2}
    errors = {job.kind: queue.get(job.id)["last_error"] for job in queue.dead_letters()}  # type: ignore[index]
    assert errors["boom"] == "RuntimeError: nope"
    assert "no handler" in errors["mystery"]


@pytest.mark.anyio
async def test_cooperative_abort(queue: SQLQueue) -> None:
    started = asyncio.Event()

    async def long(job: Job, context: JobContext) -> None:
        started.set()
        while not await context.should_abort_async():
            await asyncio.sleep(0.01)

    job_id = queue.enqueue("long", {}, lock_key="o/r#1")
    stop = asyncio.Event()
    worker = Worker(queue, {"long": long}, poll_seconds=0.01)
    runner = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(started.wait(), 10)
    queue.request_abort(lock_key="o/r#1")
    for _ in range(500):
        if queue.get(job_id)["state"] == "done":  # type: ignore[index]
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(runner, 10)
    assert queue.get(job_id)["state"] == "done"  # type: ignore[index]


def _child(url: str, folder: Path, lease: float, grace: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.worker_child", url, str(folder), str(lease), str(grace)],
        cwd=ROOT,
        env={**os.environ, "SHIPMATE_LOG_FORMAT": "json"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_job_of_a_killed_worker_is_claimed_again_after_its_lease(
    queue: SQLQueue, sqlite_url: str, tmp_path: Path
) -> None:
    job_id = queue.enqueue("block", {})
    first = _child(sqlite_url, tmp_path, lease=1.0, grace=30)
    _wait_for(lambda: (tmp_path / f"started-{first.pid}").exists())
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    (tmp_path / "release").write_text("")
    second = _child(sqlite_url, tmp_path, lease=1.0, grace=30)
    try:
        _wait_for(lambda: (tmp_path / f"done-{second.pid}").exists())
        _wait_for(lambda: queue.get(job_id)["state"] == "done")  # type: ignore[index]
        assert queue.get(job_id)["attempts"] == 2  # type: ignore[index]
    finally:
        second.terminate()
        second.wait(10)


def test_sigterm_finishes_the_current_job_then_exits(
    queue: SQLQueue, sqlite_url: str, tmp_path: Path
) -> None:
    job_id = queue.enqueue("block", {})
    later = queue.enqueue("block", {})
    child = _child(sqlite_url, tmp_path, lease=5.0, grace=30)
    _wait_for(lambda: (tmp_path / f"started-{child.pid}").exists())
    child.send_signal(signal.SIGTERM)
    time.sleep(0.3)  # it must still be finishing its job, not gone
    assert child.poll() is None
    (tmp_path / "release").write_text("")
    assert child.wait(15) == 0
    assert queue.get(job_id)["state"] == "done"  # type: ignore[index]
    later_row = queue.get(later)
    assert later_row is not None and later_row["state"] == "waiting"
    assert later_row["attempts"] == 0


def test_sigterm_past_the_grace_period_releases_the_job(
    queue: SQLQueue, sqlite_url: str, tmp_path: Path
) -> None:
    job_id = queue.enqueue("block", {})
    child = _child(sqlite_url, tmp_path, lease=5.0, grace=0.2)
    _wait_for(lambda: (tmp_path / f"started-{child.pid}").exists())
    child.send_signal(signal.SIGTERM)
    assert child.wait(15) == 0
    row = queue.get(job_id)
    assert row is not None and row["state"] == "waiting" and row["attempts"] == 0
    assert not (tmp_path / f"done-{child.pid}").exists()


@pytest.mark.anyio
async def test_webhook_jobs_have_their_own_slots_when_runs_fill_the_shared_ones(
    queue: SQLQueue,
) -> None:
    release = asyncio.Event()
    runs_started: list[int] = []
    webhooks_done: list[float] = []

    async def run(job: Job, context: JobContext) -> None:
        runs_started.append(job.id)
        await release.wait()

    async def webhook(job: Job, context: JobContext) -> None:
        webhooks_done.append(time.monotonic())

    for _ in range(3):
        queue.enqueue("run", {})
    worker = Worker(
        queue, {"run": run, "webhook": webhook}, concurrency=2, dedicated={"webhook": 1}
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(500):
            if len(runs_started) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(runs_started) == 2  # the shared slots are all busy with long runs
        sent = time.monotonic()
        webhook_id = queue.enqueue("webhook", {"delivery_id": "d1"})
        worker.notify()
        for _ in range(500):
            if webhooks_done:
                break
            await asyncio.sleep(0.01)
        assert webhooks_done and webhooks_done[0] - sent < 2.0
        assert queue.get(webhook_id)["state"] == "done"  # type: ignore[index]
        assert len(runs_started) == 2  # the third run still waits for a shared slot
    finally:
        release.set()
        stop.set()
        await asyncio.wait_for(runner, 10)
    # Stopping claims nothing new: the third run is left for the next worker.
    assert queue.counts() == {"done": 3, "waiting": 1}


def test_claim_can_be_limited_to_kinds(queue: SQLQueue) -> None:
    queue.enqueue("run", {})
    hook = queue.enqueue("webhook", {})
    job = queue.claim("w", 30, kinds=("webhook",))
    assert job is not None and job.id == hook
    assert queue.claim("w", 30, kinds=("webhook",)) is None
    other = queue.claim("w", 30)
    assert other is not None and other.kind == "run"


@pytest.mark.anyio
async def test_a_job_is_bound_to_its_delivery_for_its_whole_life(queue: SQLQueue) -> None:
    seen: list[dict[str, object]] = []

    async def run(job: Job, context: JobContext) -> None:
        seen.append(dict(structlog.contextvars.get_contextvars()))

    def fields(delivery_id: str) -> dict[str, object] | None:
        return {"github_event": "issue_comment", "repo": "o/r", "installation_id": 9}

    queue.enqueue("run", {"delivery_id": "d1", "repo": "o/r", "run_id": "r1"})
    queue.enqueue("webhook", {"delivery_id": "d2", "event": "ping", "repo": None})
    await Worker(queue, {"run": run, "webhook": run}, delivery_fields=fields).run_until_idle()
    bound = [{k: v for k, v in s.items() if k not in ("job_id", "kind")} for s in seen]
    assert bound == [
        {
            "delivery_id": "d1",
            "github_event": "issue_comment",
            "repo": "o/r",
            "installation_id": 9,
            "run_id": "r1",
        },
        {"delivery_id": "d2", "github_event": "ping", "repo": None},
    ]


@pytest.mark.anyio
async def test_the_worker_steps_back_while_the_intake_is_busy(queue: SQLQueue) -> None:
    """In `serve`, a burst of deliveries comes first: while the intake says it is busy a slot
    claims at most one job per `busy_claim_seconds`; once it is quiet, the backlog drains."""
    done: list[float] = []

    async def quick(job: Job, context: JobContext) -> None:
        done.append(time.monotonic())

    for n in range(6):
        queue.enqueue("webhook", {"n": n})
    busy = True
    worker = Worker(queue, {"webhook": quick}, concurrency=1, poll_seconds=0.05)
    worker.yield_to = lambda: busy
    worker.busy_claim_seconds = 0.4
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    start = time.monotonic()
    await asyncio.sleep(1.0)
    during = len(done)
    busy = False
    for _ in range(100):
        if len(done) == 6:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    assert 1 <= during <= 3, during  # one claim per 0.4 s while busy, not all six at once
    assert len(done) == 6 and done[during] - start >= 1.0  # the rest once the burst ended


def test_the_intake_counts_its_rate_to_say_when_it_is_busy() -> None:
    from bot.intake.writer import BUSY_RATE, RATE_WINDOW_SECONDS, DeliveryWriter

    writer = DeliveryWriter(queue=None, inline=True)  # type: ignore[arg-type]
    assert not writer.busy()
    # A burst: well over BUSY_RATE deliveries within one window.
    end = time.monotonic() + RATE_WINDOW_SECONDS * 1.2
    while time.monotonic() < end:
        writer._count()
    assert writer.busy()
    time.sleep(RATE_WINDOW_SECONDS * 2.2)  # quiet again
    assert not writer.busy()
    # A trickle far under the threshold is never busy.
    for _ in range(3):
        writer._count()
        time.sleep(RATE_WINDOW_SECONDS / 2)
    assert not writer.busy() and BUSY_RATE > 10


def test_deliveries_to_the_other_processes_make_the_intake_busy() -> None:
    """With `serve --workers N` the leading process may hold few of the connections: the
    deliveries the database gets from every process count."""
    from bot.intake.writer import BUSY_RATE, RATE_WINDOW_SECONDS, DeliveryWriter

    stored = 0

    def count() -> int:
        return stored

    writer = DeliveryWriter(queue=None, inline=True, stored=count)  # type: ignore[arg-type]
    assert not writer.busy()  # the first sample
    time.sleep(RATE_WINDOW_SECONDS * 1.1)
    stored += int(BUSY_RATE * RATE_WINDOW_SECONDS * 3)  # stored by another process
    assert writer.busy()
    time.sleep(RATE_WINDOW_SECONDS * 1.1)
    stored += 1  # a trickle
    assert not writer.busy()
    time.sleep(RATE_WINDOW_SECONDS * 3)  # after a long pause, no rate from one sample
    stored += int(BUSY_RATE * RATE_WINDOW_SECONDS * 3)
    assert not writer.busy()


def test_the_store_counts_the_deliveries_of_every_process(sqlite_url: str) -> None:
    from bot.db.deliveries import Delivery

    ours, theirs = Store(sqlite_url), Store(sqlite_url)
    migrate_all(ours)
    assert ours.deliveries_stored() == 0
    SQLQueue(theirs).enqueue_deliveries(
        [Delivery(f"d{i}", "issues", "opened", b"{}", True) for i in range(3)]
    )
    assert ours.deliveries_stored() == 3
    ours.dispose()
    theirs.dispose()
