from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.db.store import Store
from bot.jobs.queue import Job, backoff_seconds
from bot.jobs.sql import SQLQueue
from tests.dbs import migrate_all


@pytest.fixture
def queue(db_url: str) -> SQLQueue:
    store = Store(db_url, job_max_attempts=3)
    migrate_all(store)
    return SQLQueue(store)


def test_claim_complete(queue: SQLQueue) -> None:
    job_id = queue.enqueue("run", {"repo": "o/r"})
    job = queue.claim("w1", lease_seconds=30)
    assert job is not None and job.id == job_id and job.payload == {"repo": "o/r"}
    assert job.attempts == 1
    assert queue.claim("w2", lease_seconds=30) is None
    queue.complete(job)
    assert queue.counts() == {"done": 1}


def test_retry_with_backoff_then_dead_letter(queue: SQLQueue) -> None:
    queue.enqueue("run", {})
    outcomes = []
    for _ in range(3):
        job = None
        deadline = time.monotonic() + 20
        while job is None:
            # Backoff puts the job in the future; move it back rather than sleep.
            with queue.engine.begin() as conn:
                conn.exec_driver_sql("UPDATE jobs SET run_at = 0 WHERE state = 'waiting'")
            job = queue.claim("w", lease_seconds=30)
            assert time.monotonic() < deadline
        outcomes.append(queue.fail(job, "boom"))
    assert outcomes == ["retrying", "retrying", "dead"]
    (dead,) = queue.dead_letters()
    assert dead.attempts == 3
    assert queue.claim("w", lease_seconds=30) is None


def test_failed_job_waits_for_its_backoff(queue: SQLQueue) -> None:
    queue.enqueue("run", {})
    job = queue.claim("w", 30)
    assert job is not None
    queue.fail(job, "boom")
    row = queue.get(job.id)
    assert row is not None and row["state"] == "waiting" and row["last_error"] == "boom"
    assert row["run_at"] >= row["updated_at"]


def test_backoff_grows_and_is_capped() -> None:
    assert all(0 <= backoff_seconds(1) <= 2 for _ in range(50))
    assert all(0 <= backoff_seconds(20, cap=300) <= 300 for _ in range(50))
    assert max(backoff_seconds(6) for _ in range(200)) > 2


def test_expired_lease_is_claimed_again(queue: SQLQueue) -> None:
    queue.enqueue("run", {})
    job = queue.claim("dead-worker", lease_seconds=0.2)
    assert job is not None
    assert queue.claim("w2", lease_seconds=30) is None
    time.sleep(0.3)  # the lease itself is what is under test
    again = queue.claim("w2", lease_seconds=30)
    assert again is not None and again.id == job.id and again.attempts == 2
    assert not queue.heartbeat(job, "dead-worker", 30)
    assert queue.heartbeat(again, "w2", 30)


def test_lock_key_keeps_jobs_for_one_pr_apart(queue: SQLQueue) -> None:
    first = queue.enqueue("run", {"n": 1}, lock_key="o/r#1")
    second = queue.enqueue("run", {"n": 2}, lock_key="o/r#1")
    other = queue.enqueue("run", {"n": 3}, lock_key="o/r#2")
    a = queue.claim("w1", 30)
    b = queue.claim("w2", 30)
    assert a is not None and b is not None
    assert (a.id, b.id) == (first, other)
    assert queue.claim("w3", 30) is None
    assert queue.running("o/r#1")
    queue.complete(a)
    c = queue.claim("w3", 30)
    assert c is not None and c.id == second


def test_queueing_lock_keeps_one_waiting(queue: SQLQueue) -> None:
    assert queue.enqueue("run", {}, queueing_lock="o/r#1") is not None
    assert queue.enqueue("run", {}, queueing_lock="o/r#1") is None
    job = queue.claim("w", 30)
    assert job is not None
    assert queue.enqueue("run", {}, queueing_lock="o/r#1") is not None


def test_abort_drops_waiting_and_flags_running(queue: SQLQueue) -> None:
    running = queue.enqueue("run", {}, lock_key="o/r#1")
    queue.enqueue("run", {}, lock_key="o/r#1")
    job = queue.claim("w", 30)
    assert job is not None and job.id == running
    assert not queue.should_abort(job.id)
    assert queue.request_abort(lock_key="o/r#1") == 2
    assert queue.should_abort(job.id)
    queue.complete(job)
    assert queue.claim("w", 30) is None
    assert queue.counts() == {"done": 1, "aborted": 1}


def test_release_does_not_count_an_attempt(queue: SQLQueue) -> None:
    queue.enqueue("run", {})
    job = queue.claim("w", 30)
    assert job is not None
    queue.release(job)
    again = queue.claim("w", 30)
    assert again is not None and again.attempts == 1


def test_concurrent_claimers_never_share_a_job(queue: SQLQueue) -> None:
    for i in range(40):
        queue.enqueue("run", {"i": i})
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while (job := queue.claim(name, 30)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 40 and len(set(claimed)) == 40


def _claim_once_lease_ran_out(queue: SQLQueue, worker_id: str) -> Job:
    """The job claimed again by `worker_id` as soon as the earlier claim's lease runs out."""
    deadline = time.monotonic() + 10
    while (job := queue.claim(worker_id, lease_seconds=30)) is None:
        assert time.monotonic() < deadline
    return job


def test_a_worker_whose_lease_ran_out_cannot_finish_the_new_claim(queue: SQLQueue) -> None:
    job_id = queue.enqueue("run", {})
    stale = queue.claim("w1", lease_seconds=0.05)
    assert stale is not None
    fresh = _claim_once_lease_ran_out(queue, "w2")
    assert fresh.id == job_id and fresh.worker_id == "w2" and fresh.attempts == 2
    assert queue.complete(stale) is False
    assert queue.fail(stale, "late") == "lost"
    assert queue.release(stale) is False
    row = queue.get(job_id)
    assert row is not None and row["state"] == "running" and row["worker_id"] == "w2"
    assert row["last_error"] is None
    assert queue.complete(fresh) is True
    assert queue.get(job_id)["state"] == "done"  # type: ignore[index]
    assert queue.complete(fresh) is False  # done is final


def test_the_same_worker_cannot_finish_an_older_attempt(queue: SQLQueue) -> None:
    queue.enqueue("run", {})
    first = queue.claim("w", lease_seconds=0.05)
    assert first is not None
    second = _claim_once_lease_ran_out(queue, "w")
    assert queue.complete(first) is False
    assert queue.complete(second) is True


def test_enqueue_deliveries_stores_each_with_its_job(queue: SQLQueue) -> None:
    from bot.db.deliveries import Delivery

    def delivery(delivery_id: str, handled: bool) -> Delivery:
        return Delivery(delivery_id, "issues", "opened", b"{}", handled, 7, "o/r")

    statuses = queue.enqueue_deliveries(
        [delivery("a", True), delivery("b", False), delivery("a", True)]
    )
    assert statuses == ["queued", "ignored", "duplicate"]
    assert queue.enqueue_deliveries([delivery("b", True)]) == ["duplicate"]
    job = queue.claim("w", 30)
    assert job is not None and job.kind == "webhook" and job.payload["delivery_id"] == "a"
    assert queue.claim("w", 30) is None


def test_a_body_replayed_under_a_new_delivery_id_is_a_duplicate(queue: SQLQueue) -> None:
    from bot.db.deliveries import Delivery

    def delivery(delivery_id: str) -> Delivery:
        return Delivery(delivery_id, "issues", "opened", b"{}", True, 7, "o/r", 3, "cd" * 32)

    assert queue.enqueue_deliveries([delivery("a")]) == ["queued"]
    assert queue.enqueue_deliveries([delivery("b")]) == ["duplicate"]
    assert queue.store.get_delivery("b") is None
    assert queue.claim("w", 30) is not None and queue.claim("w", 30) is None


def test_only_a_dead_job_is_retried_or_dropped(queue: SQLQueue) -> None:
    dead = queue.enqueue("run", {"n": 1}, max_attempts=1)
    waiting = queue.enqueue("run", {"n": 2})
    job = queue.claim("w", 30)
    assert job is not None and job.id == dead and queue.fail(job, "boom") == "dead"
    assert [(j["id"], j["state"]) for j in queue.browse()] == [(waiting, "waiting"), (dead, "dead")]
    assert not queue.retry_dead(waiting or 0) and not queue.drop_dead(waiting or 0)
    assert queue.retry_dead(dead or 0) and not queue.retry_dead(dead or 0)
    assert [j["state"] for j in queue.browse()] == ["waiting", "waiting"]
    claimed = {job.id: job for job in (queue.claim("w", 30), queue.claim("w", 30)) if job}
    assert claimed[dead or 0].attempts == 1  # counted from zero again
    assert queue.complete(claimed[waiting or 0])
    assert queue.fail(claimed[dead or 0], "boom again") == "dead"
    assert queue.drop_dead(dead or 0) and not queue.retry_dead(dead or 0)
    assert queue.browse() == [] and queue.counts() == {"done": 1, "dropped": 1}
    # Retention forgets dropped jobs with the other finished ones.
    assert queue.delete_finished_before(time.time() + 1) == 2


def test_claim_takes_the_earliest_due_of_waiting_and_expired_jobs(queue: SQLQueue) -> None:
    abandoned = queue.enqueue("run", {"n": 1})
    queue.enqueue("webhook", {"n": 2})
    queue.enqueue("run", {"n": 3})
    lost = queue.claim("dead-worker", lease_seconds=0.05, kinds=["run"])
    assert lost is not None and lost.id == abandoned
    time.sleep(0.1)  # the lease itself runs out
    order = []
    while (job := queue.claim("w", 30)) is not None:
        order.append(job.payload["n"])
    assert order == [1, 2, 3]


def _claim_steps(store: Store) -> Callable[..., int]:
    """claim_steps(queue, found, **claim_args): the SQLite VM steps (in hundreds) a claim took,
    asserting it found a job or not."""
    from sqlalchemy import event

    steps = 0

    def count(*_: object) -> int:
        nonlocal steps
        steps += 1
        return 0

    @event.listens_for(store.engine, "before_cursor_execute")
    def watch(conn: Any, *_: object) -> None:
        conn.connection.dbapi_connection.set_progress_handler(count, 100)

    def claim_steps(queue: SQLQueue, found: bool = True, **claim_args: Any) -> int:
        nonlocal steps
        steps = 0
        assert (queue.claim("w", 30, **claim_args) is not None) == found
        return steps

    return claim_steps


def test_a_claim_does_not_read_the_whole_backlog(sqlite_url: str) -> None:
    """A claim runs inside the write transaction that the intake's commits wait for, so its
    work must not grow with the number of waiting jobs."""
    from bot.db.deliveries import Delivery

    store = Store(sqlite_url)
    queue = migrate_all(store)
    claim_steps = _claim_steps(store)

    def backlog(first: int, n: int) -> None:
        SQLQueue(store).enqueue_deliveries(
            [Delivery(f"d{i}", "issues", "opened", b"{}", True) for i in range(first, first + n)]
        )

    backlog(0, 100)
    small = claim_steps(queue, kinds=["webhook"])
    backlog(100, 20_000)
    assert claim_steps(queue, kinds=["webhook"]) <= small + 20


def test_a_claim_behind_one_issues_backlog_does_not_read_it(sqlite_url: str) -> None:
    """A burst on one issue: every waiting job has the lock that the running one holds. A
    claim then finds nothing (or a job of another issue at the end) without reading the
    backlog it cannot take."""
    from bot.db.deliveries import Delivery

    store = Store(sqlite_url)
    queue = migrate_all(store)
    claim_steps = _claim_steps(store)

    def on_issue(first: int, n: int, number: int | None = 1) -> None:
        queue.enqueue_deliveries(
            [
                Delivery(f"d{i}", "issue_comment", "created", b"{}", True, 7, "o/r", number)
                for i in range(first, first + n)
            ]
        )

    on_issue(0, 100)
    assert queue.claim("w", 30) is not None  # the issue's first job runs; its lock is held
    small = claim_steps(queue, found=False)
    on_issue(100, 20_000)
    assert claim_steps(queue, found=False) <= small + 20
    on_issue(20_100, 1, number=2)
    assert claim_steps(queue) <= small + 20
    on_issue(20_101, 1, number=None)
    assert claim_steps(queue) <= small + 20


@pytest.mark.parametrize("other_issues", [3, 300])  # walked by key; past KEYS_WALKED, scanned
def test_past_a_held_issues_backlog_the_earliest_free_job_is_claimed(
    queue: SQLQueue, other_issues: int
) -> None:
    """More waiting jobs of a held lock than a claim's first look takes in (WINDOW), then
    jobs of other issues, of no issue, and of another kind: each claim takes the earliest
    one whose lock is free, of the kinds asked for."""
    from bot.jobs.sql.due import WINDOW

    held = queue.enqueue("run", {"n": "held"}, lock_key="o/r#1")
    running = queue.claim("w", 30)
    assert running is not None and running.id == held
    for n in range(WINDOW + 5):
        queue.enqueue("run", {"n": f"behind {n}"}, lock_key="o/r#1")
    queue.enqueue("webhook", {"n": "webhook"}, lock_key="o/r#1000")
    for n in range(other_issues):
        queue.enqueue("run", {"n": f"issue {n}"}, lock_key=f"o/r#{n + 2}")
    queue.enqueue("run", {"n": "no issue"})
    queue.enqueue("webhook", {"n": "webhook, no issue"})
    webhook = queue.claim("w", 30, kinds=["webhook"])
    assert webhook is not None and webhook.payload["n"] == "webhook"
    taken = []
    while (job := queue.claim("w", 30)) is not None:
        taken.append(job.payload["n"])
    others = [f"issue {n}" for n in range(other_issues)]
    assert taken == [*others, "no issue", "webhook, no issue"]
    queue.complete(running)
    after = queue.claim("w", 30)
    assert after is not None and after.payload["n"] == "behind 0"


def test_deliveries_of_one_issue_are_handled_one_at_a_time(queue: SQLQueue) -> None:
    from bot.db.deliveries import Delivery

    def on(number: int, delivery_id: str) -> Delivery:
        return Delivery(delivery_id, "issue_comment", "created", b"{}", True, 7, "o/r", number)

    queue.enqueue_deliveries([on(1, "a"), on(1, "b"), on(2, "c")])
    first = queue.claim("w", 30)
    other = queue.claim("w", 30)
    assert first is not None and other is not None
    assert (first.payload["delivery_id"], other.payload["delivery_id"]) == ("a", "c")
    assert first.lock_key == "delivery:o/r#1"
    assert queue.claim("w", 30) is None  # "b" waits for "a"
    queue.complete(first)
    after = queue.claim("w", 30)
    assert after is not None and after.payload["delivery_id"] == "b"
