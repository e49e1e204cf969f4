"""A job's claim on the SQL queue: taken with a lease, kept by heartbeats, ended by complete,
fail or release. A worker that dies lets its lease run out and the job is claimed again."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection, Engine

from bot.jobs.queue import Job, Outcome, backoff_seconds
from bot.jobs.sql import due
from bot.jobs.sql.schema import jobs, serialize_writers


def claim(
    engine: Engine, worker_id: str, lease_seconds: float, kinds: Collection[str] | None = None
) -> Job | None:
    """The first due job whose lock is free, now leased to `worker_id`; None when none is."""
    now = time.time()
    params: dict[str, Any] = {"now": now}
    if kinds is not None:
        params["kinds"] = list(kinds)
    with engine.begin() as conn:
        serialize_writers(conn)
        while True:
            row = _next_due(conn, params, kinds is not None)
            if row is None:
                return None
            if not _retired(conn, row, now):
                return _lease(conn, row, worker_id, now + lease_seconds, now)


def _next_due(conn: Connection, params: dict[str, Any], of_kinds: bool) -> Any:
    """The first due job whose lock is free (bot/jobs/sql/due.py), or None."""
    row = conn.execute(due.first_due(of_kinds), params).first()
    if row is not None and row.state == "waiting":
        return row
    walk = conn.execute(due.keys_waiting()).scalar_one() <= due.KEYS_WALKED
    later = due.first_free_waiting(of_kinds) if walk else due.first_free_in_order(of_kinds)
    waiting = conn.execute(later, params).first()
    if waiting is None:
        return row
    if row is None or (waiting.run_at, waiting.id) < (row.run_at, row.id):
        return waiting
    return row


def _retired(conn: Connection, row: Any, now: float) -> bool:
    """Set aside a due job that must not run again: its lost worker used its last attempt,
    or it was asked to stop. True if it was."""
    if row.state == "running" and row.attempts >= row.max_attempts:
        lost = (row.last_error or "") + "\nlease expired: worker lost"
        values = {"state": "dead", "last_error": lost}
    elif row.abort_requested:
        values = {"state": "aborted"}
    else:
        return False
    conn.execute(update(jobs).where(jobs.c.id == row.id).values(updated_at=now, **values))
    return True


def _lease(conn: Connection, row: Any, worker_id: str, lease_until: float, now: float) -> Job:
    conn.execute(
        update(jobs)
        .where(jobs.c.id == row.id)
        .values(
            state="running",
            attempts=row.attempts + 1,
            lease_until=lease_until,
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


def heartbeat(engine: Engine, job: Job, worker_id: str, lease_seconds: float) -> bool:
    now = time.time()
    with engine.begin() as conn:
        result = conn.execute(
            update(jobs)
            .where(jobs.c.id == job.id, jobs.c.state == "running", jobs.c.worker_id == worker_id)
            .values(lease_until=now + lease_seconds, updated_at=now)
        )
        return result.rowcount == 1


def _finish(engine: Engine, job: Job, **values: Any) -> bool:
    """Update the job only while this claim holds it: still running, under the same worker and
    attempt (a worker whose lease ran out must not finish another worker's claim)."""
    held = [jobs.c.id == job.id, jobs.c.state == "running", jobs.c.attempts == job.attempts]
    if job.worker_id is not None:
        held.append(jobs.c.worker_id == job.worker_id)
    with engine.begin() as conn:
        result = conn.execute(update(jobs).where(*held).values(updated_at=time.time(), **values))
        return result.rowcount == 1


def complete(engine: Engine, job: Job) -> bool:
    return _finish(engine, job, state="done", lease_until=None)


def fail(engine: Engine, job: Job, error: str) -> Outcome:
    if job.attempts >= job.max_attempts:
        dead = _finish(engine, job, state="dead", lease_until=None, last_error=error)
        return "dead" if dead else "lost"
    retrying = _finish(
        engine,
        job,
        state="waiting",
        lease_until=None,
        worker_id=None,
        last_error=error,
        run_at=time.time() + backoff_seconds(job.attempts),
    )
    return "retrying" if retrying else "lost"


def release(engine: Engine, job: Job) -> bool:
    """Give the job back unfinished (a worker shutting down): it waits again, this attempt
    not counted."""
    return _finish(
        engine,
        job,
        state="waiting",
        lease_until=None,
        worker_id=None,
        attempts=max(0, job.attempts - 1),
    )
