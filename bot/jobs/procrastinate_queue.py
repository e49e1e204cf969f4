"""`Queue` on PostgreSQL: procrastinate's schema, locks and SQL functions.

Jobs live in procrastinate's tables and move through its functions, so its worker, its CLI
(`procrastinate shell`, healthchecks) and its locks apply to them: `lock` keeps two jobs of one
issue or PR from running at once, `queueing_lock` (a unique index) keeps one waiting. This side
is synchronous and runs on the store's engine, so that the intake writes a delivery and its job
in one transaction: the 202 goes out only once both are committed.
"""

from __future__ import annotations

import datetime
import functools
import importlib.metadata
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from procrastinate import schema as procrastinate_schema
from procrastinate import sql as procrastinate_sql
from procrastinate.types import JobToDefer
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.db.deliveries import Delivery, DeliveryStatus
from bot.db.migrations import SchemaPart, version_key
from bot.db.store import Store
from bot.jobs.queue import JobRequest, Queue

# Our names for procrastinate's states, as `counts` and the dashboard show them.
STATES = {
    "todo": "waiting",
    "doing": "running",
    "succeeded": "done",
    "failed": "dead",
    "cancelled": "aborted",
    "aborted": "aborted",
    "aborting": "aborted",
}
# A job's own attempt limit rides in its arguments under this key (the task's retry strategy
# reads it); the handler never sees it.
MAX_ATTEMPTS_ARG = "_shipmate_max_attempts"
# The queue of the workers' own periodic jobs (recovery, retention), not shown as the queue's.
MAINTENANCE_QUEUE = "maintenance"


def procrastinate_version() -> str:
    return importlib.metadata.version("procrastinate")


def procrastinate_part() -> SchemaPart:
    """procrastinate's schema as one part of ours: its own schema.sql on a new database, its
    own migration files (named by the version that brought them) on an older one."""
    return SchemaPart("procrastinate", procrastinate_version(), _apply_procrastinate)


def _apply_procrastinate(conn: Connection, recorded: str | None) -> None:
    driver: Any = conn.connection.dbapi_connection
    exists = conn.exec_driver_sql("SELECT to_regclass('procrastinate_jobs')").scalar()
    # Sent as they are, without parameters: psycopg then leaves their % signs alone.
    if exists is None:
        driver.cursor().execute(procrastinate_schema.SchemaManager.get_schema())
        return
    if recorded is None:
        # Applied by procrastinate's own `schema --apply`, of the version installed here.
        return
    for path in _migrations_after(recorded):
        driver.cursor().execute(path.read_text(encoding="utf-8"))


def _migrations_after(recorded: str) -> list[Path]:
    """procrastinate's migration files newer than `recorded`, up to the installed version, in
    order ("03.04.00_01_pre_....sql" came with 3.4.0)."""
    folder = Path(procrastinate_schema.SchemaManager.get_migrations_path())
    installed = version_key(procrastinate_version())
    chosen = []
    for path in sorted(folder.glob("*.sql")):
        version = version_key(path.name.split("_", 1)[0])
        if version_key(recorded) < version <= installed:
            chosen.append(path)
    return chosen


def _defer_row(
    kind: str,
    payload: Mapping[str, Any],
    lock_key: str | None = None,
    queueing_lock: str | None = None,
    run_at: datetime.datetime | None = None,
) -> JobToDefer:
    # The queue is named after the kind: a worker's webhook slots listen to "webhook" only.
    arguments: Any = Jsonb(dict(payload))  # what psycopg sends as jsonb
    return JobToDefer(kind, kind, 0, lock_key, queueing_lock, arguments, run_at)


@functools.cache
def _query(name: str) -> str:
    return procrastinate_sql.queries[name]


class ProcrastinateQueue(Queue):
    """`Queue` on procrastinate's tables, through the store's engine (psycopg)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    def schema_part(self) -> SchemaPart:
        return procrastinate_part()

    def enqueue_deliveries(self, batch: Sequence[Delivery]) -> list[DeliveryStatus]:
        statuses, rows = self.store.prepare_deliveries(batch)
        now = time.time()
        with self.engine.begin() as conn:
            inserted = self.store.insert_deliveries(conn, rows, now)
            jobs = [
                _defer_row("webhook", self.store.webhook_job_payload(delivery), delivery.lock_key)
                for (delivery, _, _), fresh in zip(rows, inserted, strict=True)
                if fresh and delivery.handled
            ]
            if jobs:
                conn.exec_driver_sql(_query("defer_jobs"), {"jobs": jobs})
        return self.store.settle_statuses(statuses, inserted)

    def defer(self, request: JobRequest) -> int | None:
        args = dict(request.payload)
        if request.max_attempts is not None:
            args[MAX_ATTEMPTS_ARG] = request.max_attempts
        run_at = None
        if request.delay_seconds > 0:
            delay = datetime.timedelta(seconds=request.delay_seconds)
            run_at = datetime.datetime.now(datetime.UTC) + delay
        row = _defer_row(request.kind, args, request.lock_key, request.queueing_lock, run_at)
        try:
            with self.engine.begin() as conn:
                ids = conn.exec_driver_sql(_query("defer_jobs"), {"jobs": [row]}).scalars()
                return int(ids.one())
        except IntegrityError as exc:
            # The queueing lock's unique index: one job of this key is already waiting.
            if "queueing_lock" in str(exc.orig):
                return None
            raise

    def request_abort(self, *, job_id: int | None = None, lock_key: str | None = None) -> int:
        if job_id is None and lock_key is None:
            raise ValueError("request_abort needs a job_id or a lock_key")
        column, value = ("id", job_id) if job_id is not None else ("lock", lock_key)
        with self.engine.begin() as conn:
            ids = conn.exec_driver_sql(
                f"SELECT id FROM procrastinate_jobs WHERE {column} = %(value)s"  # noqa: S608
                " AND status IN ('todo', 'doing') FOR UPDATE",
                {"value": value},
            ).scalars()
            stopped = 0
            for found in list(ids):
                # A waiting job is cancelled; a running one is flagged, and its job sees
                # should_abort() (procrastinate's worker hears of it by NOTIFY).
                cancelled = conn.exec_driver_sql(
                    _query("cancel_job"), {"job_id": found, "abort": True, "delete_job": False}
                ).scalar()
                stopped += cancelled is not None
        return stopped

    def should_abort(self, job_id: int) -> bool:
        with self.engine.connect() as conn:
            flag = conn.exec_driver_sql(
                "SELECT abort_requested FROM procrastinate_jobs WHERE id = %(id)s", {"id": job_id}
            ).scalar()
        return bool(flag)

    def running(self, lock_key: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.exec_driver_sql(
                "SELECT 1 FROM procrastinate_jobs WHERE lock = %(lock)s AND status = 'doing'",
                {"lock": lock_key},
            ).first()
        return found is not None

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(_query("count_jobs_status")).all()
        counted: dict[str, int] = {}
        for count, status in rows:
            name = STATES.get(str(status), str(status))
            counted[name] = counted.get(name, 0) + int(count)
        return counted

    def delete_finished_before(self, cutoff: float) -> int:
        """Retention: forget jobs that ended before `cutoff` (and their events)."""
        hours = max(0, int((time.time() - cutoff) // 3600))
        with self.engine.begin() as conn:
            result = conn.exec_driver_sql(
                _query("delete_old_jobs"),
                {
                    "nb_hours": hours,
                    "queue": None,
                    "statuses": ["succeeded", "failed", "cancelled", "aborted"],
                },
            )
            return int(result.rowcount)

    def browse(self, limit: int = 200) -> list[dict[str, Any]]:
        """Waiting, running and dead jobs, newest first, for the dashboard's queue page, in the
        SQL queue's terms. A webhook job's error is its delivery's (procrastinate keeps none)."""
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT j.id, j.task_name, j.status, j.attempts, j.lock, j.args, d.error"
                " FROM procrastinate_jobs j LEFT JOIN deliveries d"
                " ON j.task_name = 'webhook' AND d.delivery_id = j.args->>'delivery_id'"
                " WHERE j.status IN ('todo', 'doing', 'failed') AND j.queue_name <> %(maintenance)s"
                " ORDER BY j.id DESC LIMIT %(limit)s",
                {"limit": limit, "maintenance": MAINTENANCE_QUEUE},
            ).all()
        return [self._browsed(row) for row in rows]

    def _browsed(self, row: Any) -> dict[str, Any]:
        arguments = dict(row.args or {})
        own = arguments.pop(MAX_ATTEMPTS_ARG, None)
        # procrastinate counts the attempts before the current one: a running or failed job
        # has had one more.
        tried = int(row.attempts) + (row.status in ("doing", "failed"))
        return {
            "id": int(row.id),
            "kind": str(row.task_name),
            "state": STATES.get(str(row.status), str(row.status)),
            "attempts": tried,
            "max_attempts": own
            if isinstance(own, int) and own > 0
            else self.store.job_max_attempts,
            "lock_key": row.lock,
            "last_error": row.error,
            "payload": arguments,
        }

    def retry_dead(self, job_id: int) -> bool:
        """A dead (failed) job waits again, through procrastinate's own retry, with its
        attempts counted from zero. False when it is not dead, or when a job of its queueing
        lock is already waiting (that one will do its work)."""
        try:
            with self.engine.begin() as conn:
                status = conn.exec_driver_sql(
                    "SELECT status FROM procrastinate_jobs WHERE id = %(id)s FOR UPDATE",
                    {"id": job_id},
                ).scalar()
                if status != "failed":
                    return False
                conn.exec_driver_sql(
                    _query("retry_job"),
                    {
                        "job_id": job_id,
                        "retry_at": datetime.datetime.now(datetime.UTC),
                        "new_priority": None,
                        "new_queue_name": None,
                        "new_lock": None,
                    },
                )
                conn.exec_driver_sql(
                    "UPDATE procrastinate_jobs SET attempts = 0 WHERE id = %(id)s", {"id": job_id}
                )
        except IntegrityError as exc:
            if "queueing_lock" in str(exc.orig):
                return False
            raise
        return True

    def drop_dead(self, job_id: int) -> bool:
        """A dead job is set aside for good: cancelled, kept for the record until retention
        forgets it (procrastinate has no state of its own for this)."""
        with self.engine.begin() as conn:
            changed = conn.exec_driver_sql(
                "UPDATE procrastinate_jobs SET status = 'cancelled'"
                " WHERE id = %(id)s AND status = 'failed'",
                {"id": job_id},
            ).rowcount
        return bool(changed)
