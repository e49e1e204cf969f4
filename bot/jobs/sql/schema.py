"""The SQL queue's one table, `jobs`, and its part of the schema (`shipmate migrate`)."""

from __future__ import annotations

from sqlalchemy import Index, MetaData, text
from sqlalchemy.engine import Connection

from bot.db.columns import table
from bot.db.migrations import SchemaPart

metadata = MetaData()
# A job's state: waiting -> running -> done | waiting (retry) | dead; aborted when cancelled
# while waiting.
jobs = table(
    "jobs",
    metadata,
    """
    id               Integer      primary key autoincrement
    kind             String(50)   not null
    payload          JSON         not null
    state            String(20)   not null  default "waiting"
    attempts         Integer      not null  default 0
    max_attempts     Integer      not null
    lock_key         String(300)
    queueing_lock    String(300)
    run_at           Float        not null
    lease_until      Float
    worker_id        String(100)
    abort_requested  Boolean      not null  default false
    last_error       Text
    created_at       Float        not null
    updated_at       Float        not null
    """,
    Index("ix_jobs_state_run_at", "state", "run_at"),
)
# Many jobs have neither lock (webhook jobs of no issue or PR; none has a queueing lock): only
# the ones set are indexed, which spares those index entries and the intake's commits pages.
Index(
    "ix_jobs_lock_key_set",
    jobs.c.lock_key,
    sqlite_where=jobs.c.lock_key.is_not(None),
    postgresql_where=jobs.c.lock_key.is_not(None),
)
Index(
    "ix_jobs_queueing_lock_set",
    jobs.c.queueing_lock,
    sqlite_where=jobs.c.queueing_lock.is_not(None),
    postgresql_where=jobs.c.queueing_lock.is_not(None),
)
# Indexes of earlier versions, which the migration drops.
DROPPED_INDEXES = ("ix_jobs_lock_key", "ix_jobs_queueing_lock")
SCHEMA_VERSION = "1"


def _apply_schema(conn: Connection, recorded: str | None) -> None:
    metadata.create_all(conn)
    for name in DROPPED_INDEXES:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
    for index in jobs.indexes:  # a table of an unversioned Shipmate gets the ones it lacks
        index.create(conn, checkfirst=True)


def schema_part() -> SchemaPart:
    return SchemaPart("queue", SCHEMA_VERSION, _apply_schema)


def serialize_writers(conn: Connection) -> None:
    """Take the queue's writer lock for this transaction, before reading what it will write."""
    # SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL needs a lock so two
    # claimers cannot both see a lock_key as free.
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(727001)"))
