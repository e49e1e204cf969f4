"""The job queue: a narrow interface (procrastinate's shape) and its SQL implementation.

Jobs are claimed with a lease; a worker that dies lets its lease run out and the job is claimed
again. `lock_key` keeps two jobs for the same issue or PR from running at once; `queueing_lock`
keeps at most one such job waiting. Cancel is cooperative: `should_abort` is polled.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sqlalchemy import Float, and_, bindparam, func, insert, or_, select, text, union_all, update
from sqlalchemy.engine import Connection

from bot.db import schema
from bot.db.store import Delivery, DeliveryStatus, Store


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


class Queue(Protocol):
    def enqueue(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        lock_key: str | None = None,
        queueing_lock: str | None = None,
        delay_seconds: float = 0,
        max_attempts: int | None = None,
    ) -> int | None: ...

    def enqueue_deliveries(self, batch: Sequence[Delivery]) -> list[DeliveryStatus]:
        """Record each delivery and queue a `webhook` job for each handled one, atomically:
        a delivery is never stored without its job, nor a job without its delivery."""
        ...

    def claim(
        self, worker_id: str, lease_seconds: float, kinds: Collection[str] | None = None
    ) -> Job | None:
        """The next due job (of one of `kinds`, when given), leased to `worker_id`."""
        ...

    def heartbeat(self, job: Job, worker_id: str, lease_seconds: float) -> bool: ...

    def complete(self, job: Job) -> bool:
        """Mark it done; False (and nothing changed) when the claim no longer holds it."""
        ...

    def fail(self, job: Job, error: str) -> Outcome:
        """Retry it later or dead-letter it; "lost" when the claim no longer holds it."""
        ...

    def release(self, job: Job) -> bool: ...

    def request_abort(self, *, job_id: int | None = None, lock_key: str | None = None) -> int: ...

    def should_abort(self, job_id: int) -> bool: ...

    def running(self, lock_key: str) -> bool: ...


def backoff_seconds(attempt: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter: attempt 1 waits up to 2 s, then 4, 8... to `cap`."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))  # noqa: S311


@functools.cache
def _next_due(of_kinds: bool) -> Any:
    """The claim's query: the first due job (of the `kinds` given, with `of_kinds`) whose
    lock_key no running job holds, at time `now`. Built once: building it costs more than
    running it, under the GIL the event loop needs.

    The first waiting job and the first expired lease are each looked up by index, and the
    earlier taken. One query with `waiting OR lease ran out` sorted every waiting job (tens of
    ms with a backlog of 100k), inside the write transaction that the intake's commits wait
    for."""
    jobs = schema.jobs
    now: Any = bindparam("now", type_=Float)
    held = (
        select(jobs.c.lock_key)
        .where(jobs.c.state == "running", jobs.c.lease_until > now, jobs.c.lock_key.is_not(None))
        .scalar_subquery()
    )
    free = or_(jobs.c.lock_key.is_(None), jobs.c.lock_key.not_in(held))
    if of_kinds:
        free = and_(free, jobs.c.kind.in_(bindparam("kinds", expanding=True)))

    def first(*due: Any) -> Any:
        query = select(jobs).where(*due, free).order_by(jobs.c.run_at, jobs.c.id).limit(1)
        return query.subquery().select()

    candidates = union_all(
        first(jobs.c.state == "waiting", jobs.c.run_at <= now),
        # The worker that held it died: its lease ran out.
        first(jobs.c.state == "running", jobs.c.lease_until <= now),
    ).subquery()
    return select(candidates).order_by(candidates.c.run_at, candidates.c.id).limit(1)


class SQLQueue:
    """`Queue` on the Store's database (SQLite or PostgreSQL)."""

    def __init__(self, store: Store, *, default_max_attempts: int | None = None) -> None:
        self.store = store
        self.engine = store.engine
        self.default_max_attempts = default_max_attempts or store.job_max_attempts

    def enqueue_deliveries(self, batch: Sequence[Delivery]) -> list[DeliveryStatus]:
        return self.store.accept_deliveries(batch)

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
        now = time.time()
        jobs = schema.jobs
        with self.engine.begin() as conn:
            self._serialize(conn)
            if queueing_lock is not None:
                waiting = conn.execute(
                    select(jobs.c.id).where(
                        jobs.c.queueing_lock == queueing_lock, jobs.c.state == "waiting"
                    )
                ).first()
                if waiting is not None:
                    return None
            result = conn.execute(
                insert(jobs)
                .values(
                    kind=kind,
                    payload=dict(payload),
                    state="waiting",
                    attempts=0,
                    max_attempts=max_attempts or self.default_max_attempts,
                    lock_key=lock_key,
                    queueing_lock=queueing_lock,
                    run_at=now + delay_seconds,
                    abort_requested=False,
                    created_at=now,
                    updated_at=now,
                )
                .returning(jobs.c.id)
            )
            return int(result.scalar_one())

    def _serialize(self, conn: Connection) -> None:
        # SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL needs a lock so two
        # claimers cannot both see a lock_key as free.
        if self.store.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(727001)"))

    def claim(
        self, worker_id: str, lease_seconds: float, kinds: Collection[str] | None = None
    ) -> Job | None:
        now = time.time()
        jobs = schema.jobs
        params: dict[str, Any] = {"now": now}
        if kinds is not None:
            params["kinds"] = list(kinds)
        with self.engine.begin() as conn:
            self._serialize(conn)
            while True:
                row = conn.execute(_next_due(kinds is not None), params).first()
                if row is None:
                    return None
                if row.state == "running" and row.attempts >= row.max_attempts:
                    conn.execute(
                        update(jobs)
                        .where(jobs.c.id == row.id)
                        .values(
                            state="dead",
                            last_error=(row.last_error or "") + "\nlease expired: worker lost",
                            updated_at=now,
                        )
                    )
                    continue
                if row.abort_requested:
                    conn.execute(
                        update(jobs)
                        .where(jobs.c.id == row.id)
                        .values(state="aborted", updated_at=now)
                    )
                    continue
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == row.id)
                    .values(
                        state="running",
                        attempts=row.attempts + 1,
                        lease_until=now + lease_seconds,
                        worker_id=worker_id,
                        updated_at=now,
                    )
                )
                return Job(
                    id=row.id,
                    kind=row.kind,
                    payload=dict(row.payload),
                    attempts=row.attempts + 1,
                    max_attempts=row.max_attempts,
                    lock_key=row.lock_key,
                    worker_id=worker_id,
                )

    def heartbeat(self, job: Job, worker_id: str, lease_seconds: float) -> bool:
        jobs = schema.jobs
        now = time.time()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job.id, jobs.c.state == "running", jobs.c.worker_id == worker_id
                )
                .values(lease_until=now + lease_seconds, updated_at=now)
            )
            return result.rowcount == 1

    def _finish(self, job: Job, **values: Any) -> bool:
        """Update the job only while this claim holds it: still running, under the same worker
        and attempt (a worker whose lease ran out must not finish another worker's claim)."""
        jobs = schema.jobs
        held = [jobs.c.id == job.id, jobs.c.state == "running", jobs.c.attempts == job.attempts]
        if job.worker_id is not None:
            held.append(jobs.c.worker_id == job.worker_id)
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs).where(*held).values(updated_at=time.time(), **values)
            )
            return result.rowcount == 1

    def complete(self, job: Job) -> bool:
        return self._finish(job, state="done", lease_until=None)

    def fail(self, job: Job, error: str) -> Outcome:
        if job.attempts >= job.max_attempts:
            dead = self._finish(job, state="dead", lease_until=None, last_error=error)
            return "dead" if dead else "lost"
        retrying = self._finish(
            job,
            state="waiting",
            lease_until=None,
            worker_id=None,
            last_error=error,
            run_at=time.time() + backoff_seconds(job.attempts),
        )
        return "retrying" if retrying else "lost"

    def release(self, job: Job) -> bool:
        return self._finish(
            job,
            state="waiting",
            lease_until=None,
            worker_id=None,
            attempts=max(0, job.attempts - 1),
        )

    def request_abort(self, *, job_id: int | None = None, lock_key: str | None = None) -> int:
        jobs = schema.jobs
        if job_id is None and lock_key is None:
            raise ValueError("request_abort needs a job_id or a lock_key")
        target = jobs.c.id == job_id if job_id is not None else jobs.c.lock_key == lock_key
        now = time.time()
        with self.engine.begin() as conn:
            dropped = conn.execute(
                update(jobs)
                .where(target, jobs.c.state == "waiting")
                .values(state="aborted", updated_at=now)
            ).rowcount
            flagged = conn.execute(
                update(jobs)
                .where(target, jobs.c.state == "running")
                .values(abort_requested=True, updated_at=now)
            ).rowcount
        return int(dropped) + int(flagged)

    def should_abort(self, job_id: int) -> bool:
        with self.engine.connect() as conn:
            flag = conn.execute(
                select(schema.jobs.c.abort_requested).where(schema.jobs.c.id == job_id)
            ).scalar()
        return bool(flag)

    def running(self, lock_key: str) -> bool:
        jobs = schema.jobs
        with self.engine.connect() as conn:
            row = conn.execute(
                select(jobs.c.id).where(
                    jobs.c.lock_key == lock_key,
                    jobs.c.state == "running",
                    jobs.c.lease_until > time.time(),
                )
            ).first()
        return row is not None

    def counts(self) -> dict[str, int]:
        jobs = schema.jobs
        with self.engine.connect() as conn:
            rows = conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))
            return {state: int(n) for state, n in rows}

    def dead_letters(self) -> list[Job]:
        jobs = schema.jobs
        with self.engine.connect() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.state == "dead").order_by(jobs.c.id))
            return [
                Job(r.id, r.kind, dict(r.payload), r.attempts, r.max_attempts, r.lock_key)
                for r in rows
            ]

    def browse(self, limit: int = 200) -> list[dict[str, Any]]:
        """Waiting, running and dead jobs, newest first, for the dashboard's queue page."""
        jobs = schema.jobs
        shown = ("waiting", "running", "dead")
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(jobs).where(jobs.c.state.in_(shown)).order_by(jobs.c.id.desc()).limit(limit)
            )
            return [dict(r._mapping) for r in rows]

    def retry_dead(self, job_id: int) -> bool:
        """A dead job waits again, with its attempts counted from zero."""
        jobs = schema.jobs
        now = time.time()
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == "dead")
                .values(state="waiting", attempts=0, run_at=now, lease_until=None, updated_at=now)
            ).rowcount
        return bool(changed)

    def drop_dead(self, job_id: int) -> bool:
        """A dead job is set aside for good (kept, as `dropped`, for the record)."""
        jobs = schema.jobs
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == "dead")
                .values(state="dropped", updated_at=time.time())
            ).rowcount
        return bool(changed)

    def get(self, job_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.jobs).where(schema.jobs.c.id == job_id)).first()
        return None if row is None else dict(row._mapping)
