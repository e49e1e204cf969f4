"""The SQL queue seen from outside a claim: cancel, what runs, counts, the dashboard's queue
page and its dead jobs, and retention."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine

from bot.db.engine import fetch_row, fetch_rows
from bot.jobs.queue import Job
from bot.jobs.sql.schema import jobs

FINISHED_STATES = ("done", "dead", "aborted", "dropped")


def request_abort(engine: Engine, *, job_id: int | None, lock_key: str | None) -> int:
    if job_id is None and lock_key is None:
        raise ValueError("request_abort needs a job_id or a lock_key")
    target = jobs.c.id == job_id if job_id is not None else jobs.c.lock_key == lock_key
    now = time.time()
    with engine.begin() as conn:
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


def should_abort(engine: Engine, job_id: int) -> bool:
    with engine.connect() as conn:
        flag = conn.execute(select(jobs.c.abort_requested).where(jobs.c.id == job_id)).scalar()
    return bool(flag)


def running(engine: Engine, lock_key: str) -> bool:
    with engine.connect() as conn:
        row = conn.execute(
            select(jobs.c.id).where(
                jobs.c.lock_key == lock_key,
                jobs.c.state == "running",
                jobs.c.lease_until > time.time(),
            )
        ).first()
    return row is not None


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))
        return {state: int(n) for state, n in rows}


def dead_letters(engine: Engine) -> list[Job]:
    with engine.connect() as conn:
        rows = conn.execute(select(jobs).where(jobs.c.state == "dead").order_by(jobs.c.id))
        return [
            Job(r.id, r.kind, dict(r.payload), r.attempts, r.max_attempts, r.lock_key) for r in rows
        ]


def browse(engine: Engine, limit: int) -> list[dict[str, Any]]:
    """Waiting, running and dead jobs, newest first, for the dashboard's queue page."""
    shown = ("waiting", "running", "dead")
    query = select(jobs).where(jobs.c.state.in_(shown)).order_by(jobs.c.id.desc()).limit(limit)
    return fetch_rows(engine, query)


def retry_dead(engine: Engine, job_id: int) -> bool:
    """A dead job waits again, with its attempts counted from zero."""
    now = time.time()
    with engine.begin() as conn:
        changed = conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.state == "dead")
            .values(state="waiting", attempts=0, run_at=now, lease_until=None, updated_at=now)
        ).rowcount
    return bool(changed)


def drop_dead(engine: Engine, job_id: int) -> bool:
    """A dead job is set aside for good (kept, as `dropped`, for the record)."""
    with engine.begin() as conn:
        changed = conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.state == "dead")
            .values(state="dropped", updated_at=time.time())
        ).rowcount
    return bool(changed)


def get(engine: Engine, job_id: int) -> dict[str, Any] | None:
    return fetch_row(engine, select(jobs).where(jobs.c.id == job_id))


def delete_finished_before(engine: Engine, cutoff: float) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            delete(jobs).where(jobs.c.state.in_(FINISHED_STATES), jobs.c.updated_at < cutoff)
        )
        return int(result.rowcount)
