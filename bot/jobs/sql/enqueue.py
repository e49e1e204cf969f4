"""Jobs into the SQL queue: one at a time (`enqueue`), and the intake's webhook jobs, written
in the same transaction as their deliveries."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from bot.db.deliveries import Delivery, DeliveryStatus, PreparedDelivery
from bot.db.store import Store
from bot.jobs.queue import JobRequest
from bot.jobs.sql.schema import jobs, serialize_writers

# The columns the intake writes for a webhook job, in its executemany's order.
JOB_COLUMNS = (
    "kind",
    "payload",
    "lock_key",
    "state",
    "attempts",
    "max_attempts",
    "run_at",
    "abort_requested",
    "created_at",
    "updated_at",
)


def enqueue(engine: Engine, request: JobRequest, default_max_attempts: int) -> int | None:
    """Queue one job; None when a job of its queueing lock is already waiting."""
    now = time.time()
    with engine.begin() as conn:
        serialize_writers(conn)
        if request.queueing_lock is not None:
            waiting = conn.execute(
                select(jobs.c.id).where(
                    jobs.c.queueing_lock == request.queueing_lock, jobs.c.state == "waiting"
                )
            ).first()
            if waiting is not None:
                return None
        result = conn.execute(
            insert(jobs)
            .values(
                kind=request.kind,
                payload=dict(request.payload),
                state="waiting",
                attempts=0,
                max_attempts=request.max_attempts or default_max_attempts,
                lock_key=request.lock_key,
                queueing_lock=request.queueing_lock,
                run_at=now + request.delay_seconds,
                abort_requested=False,
                created_at=now,
                updated_at=now,
            )
            .returning(jobs.c.id)
        )
        return int(result.scalar_one())


def enqueue_deliveries(
    store: Store, batch: Sequence[Delivery], max_attempts: int
) -> list[DeliveryStatus]:
    """Store each delivery and, for handled ones, its job, in ONE transaction.

    A delivery id already stored, or repeated in the batch, is a duplicate and writes nothing;
    so is a body already accepted under another id (its digest: a replay). This is the intake's
    hot path: on SQLite it talks to the driver directly, skipping SQLAlchemy's per-statement
    overhead (the same SQL, one transaction, one commit).
    """
    statuses, rows = store.prepare_deliveries(batch)
    now = time.time()
    if store.dialect == "sqlite":
        connection = store.intake_connection()
        connection.begin_immediate()
        try:
            inserted = _insert_sqlite(store, connection, rows, now, max_attempts)
        except BaseException:
            connection.rollback()
            raise
        connection.commit()
    else:
        with store.engine.begin() as conn:
            inserted = store.insert_deliveries(conn, rows, now)
            fresh = _webhook_jobs(store, rows, inserted, now, max_attempts)
            if fresh:
                conn.execute(insert(jobs), fresh)
    return store.settle_statuses(statuses, inserted)


def _webhook_jobs(
    store: Store,
    rows: Sequence[PreparedDelivery],
    inserted: Sequence[bool],
    now: float,
    max_attempts: int,
) -> list[dict[str, Any]]:
    return [
        {
            "kind": "webhook",
            "payload": store.webhook_job_payload(delivery),
            "lock_key": delivery.lock_key,
            "state": "waiting",
            "attempts": 0,
            "max_attempts": max_attempts,
            "run_at": now,
            "abort_requested": False,
            "created_at": now,
            "updated_at": now,
        }
        for (delivery, _, _), new in zip(rows, inserted, strict=True)
        if new and delivery.handled
    ]


def _insert_sqlite(
    store: Store,
    connection: Any,
    rows: Sequence[PreparedDelivery],
    now: float,
    max_attempts: int,
) -> list[bool]:
    cursor = connection.cursor()
    try:
        inserted = store.insert_deliveries_sqlite(cursor, rows, now)
        fresh = _webhook_jobs(store, rows, inserted, now, max_attempts)
        if fresh:
            for job in fresh:
                job["payload"] = orjson.dumps(job["payload"]).decode()
            columns = ", ".join(JOB_COLUMNS)
            cursor.executemany(
                f"INSERT INTO jobs ({columns}) VALUES ({', '.join('?' * len(JOB_COLUMNS))})",  # noqa: S608
                [tuple(job[column] for column in JOB_COLUMNS) for job in fresh],
            )
    finally:
        cursor.close()
    return inserted
