"""The queue's narrow interface (procrastinate's shape), which both backends implement: the
SQL queue (bot/jobs/sql/: SQLite, the default) and procrastinate on PostgreSQL
(bot/jobs/procrastinate_queue.py). Handlers, runs and the intake see only this.

`lock_key` keeps two jobs for the same issue or PR from running at once; `queueing_lock` keeps
at most one such job waiting. Cancel is cooperative: `should_abort` is polled.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bot.db.deliveries import Delivery, DeliveryStatus
from bot.db.migrations import SchemaPart


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    lock_key: str | None
    # Who claimed it: complete/fail/release only count while this claim still holds the job.
    worker_id: str | None = None


Outcome = Literal["retrying", "dead", "lost"]


@dataclass(frozen=True)
class JobRequest:
    """A job to queue, as `Queue.enqueue` was asked for it."""

    kind: str
    payload: Mapping[str, Any]
    lock_key: str | None = None
    queueing_lock: str | None = None
    delay_seconds: float = 0
    max_attempts: int | None = None


class Queue(Protocol):
    """Backends subclass it: they implement `defer` and inherit `enqueue`."""

    def enqueue(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        lock_key: str | None = None,
        queueing_lock: str | None = None,
        delay_seconds: float = 0,
        max_attempts: int | None = None,
    ) -> int | None:
        """Queue a job; its id, or None when a job of its `queueing_lock` is already waiting."""
        request = JobRequest(kind, payload, lock_key, queueing_lock, delay_seconds, max_attempts)
        return self.defer(request)

    def defer(self, request: JobRequest) -> int | None:
        """`enqueue`, the backend's own part."""
        ...

    def enqueue_deliveries(self, batch: Sequence[Delivery]) -> list[DeliveryStatus]:
        """Record each delivery and queue a `webhook` job for each handled one, atomically:
        a delivery is never stored without its job, nor a job without its delivery."""
        ...

    def request_abort(self, *, job_id: int | None = None, lock_key: str | None = None) -> int: ...

    def should_abort(self, job_id: int) -> bool: ...

    def running(self, lock_key: str) -> bool: ...

    def counts(self) -> dict[str, int]:
        """Jobs by state: waiting, running, done, dead, aborted (for the queue page)."""
        ...

    def browse(self, limit: int = 200) -> list[dict[str, Any]]:
        """Waiting, running and dead jobs, newest first, each with id, kind, state, attempts,
        max_attempts, lock_key, last_error (for the dashboard's queue page)."""
        ...

    def retry_dead(self, job_id: int) -> bool:
        """A dead job waits again, its attempts counted from zero; False if it is not dead."""
        ...

    def drop_dead(self, job_id: int) -> bool:
        """A dead job is set aside for good; False if it is not dead."""
        ...

    def delete_finished_before(self, cutoff: float) -> int:
        """Retention: forget jobs that ended before `cutoff` (UNIX seconds)."""
        ...

    def schema_part(self) -> SchemaPart:
        """The queue's own tables, for `shipmate migrate` (bot/db/migrations.py)."""
        ...


def backoff_seconds(attempt: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter: attempt 1 waits up to 2 s, then 4, 8... to `cap`."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))  # noqa: S311
