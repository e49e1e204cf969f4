"""Which queue backend a process gets, the database checked (or migrated) before it starts,
and the worker that goes with the backend. bot/app.py starts `serve` and `worker` with them;
`migrate` starts here.

SQLite (the default): the SQL queue. PostgreSQL: procrastinate, unless
SHIPMATE_QUEUE_BACKEND=sql. Handlers, runs and the intake see only `Queue`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol

import structlog
import uvloop
from sqlalchemy.exc import SQLAlchemyError

from bot.config import ConfigError, Settings
from bot.db import migrations
from bot.db.migrations import SchemaNotReady, SchemaPart
from bot.db.store import Store, open_store
from bot.jobs.capacity import host_capacity
from bot.jobs.queue import Queue
from bot.jobs.sql import SQLQueue
from bot.jobs.worker import JobHandler, Worker

log = structlog.get_logger("shipmate.jobs")


class Runner(Protocol):
    """What runs jobs in a process: the SQL worker, or procrastinate's."""

    worker_id: str

    def notify(self) -> None: ...

    async def run(self, stop: asyncio.Event) -> None: ...


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run a worker process's `main` on uvloop, the loop uvicorn gives `serve`: a
    procrastinate worker spends most of its Python time in the event loop (two round trips
    and a few tasks a job), and uvloop's is about a tenth cheaper than asyncio's."""
    uvloop.run(main)


def uses_procrastinate(settings: Settings, store: Store) -> bool:
    if settings.queue_backend == "sql":
        return False
    if store.dialect != "postgresql":
        if settings.queue_backend == "procrastinate":
            raise ConfigError("SHIPMATE_QUEUE_BACKEND", "procrastinate needs PostgreSQL")
        return False
    return True


def open_queue(settings: Settings, store: Store) -> Queue:
    if uses_procrastinate(settings, store):
        from bot.jobs.procrastinate_queue import ProcrastinateQueue

        return ProcrastinateQueue(store)
    return SQLQueue(store)


def schema_parts(store: Store, queue: Queue) -> list[SchemaPart]:
    return [store.schema_part(), queue.schema_part()]


def open_database(settings: Settings) -> tuple[Store, Queue]:
    """The store and queue for `serve` and `worker`, once the schema is the one this code
    expects. SQLite is migrated here when it is behind, a new file included: it belongs to
    this host alone, so no older process elsewhere can be running against it, and a fresh
    machine's `bash scripts/serve` just works. PostgreSQL is shared by many processes of a
    deployment, possibly of two versions during a rollout: it is migrated only by
    `shipmate migrate`, and a process refuses to start on it until then (`SchemaNotReady`).
    Any database migrated by a newer Shipmate is refused."""
    store = open_store(settings, migrate=False)
    try:
        queue = open_queue(settings, store)
        parts = schema_parts(store, queue)
        problem = migrations.check(store.engine, parts)
        if problem is not None and store.dialect == "sqlite" and problem.kind == "behind":
            applied = migrations.migrate(store.engine, parts)
            log.info("database.migrated", applied=applied)
            problem = None
    except SQLAlchemyError as exc:
        store.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError("SHIPMATE_DATABASE_URL", f"cannot use the database ({reason})") from None
    except BaseException:
        store.dispose()
        raise
    if problem is not None:
        store.dispose()
        raise SchemaNotReady(problem.message)
    return store, queue


def migrate_command(settings: Settings) -> int:
    """`shipmate migrate`: every part of the schema to this version; prints what it did."""
    store = open_store(settings, migrate=False)
    try:
        queue = open_queue(settings, store)
        applied = migrations.migrate(store.engine, schema_parts(store, queue))
    finally:
        store.dispose()
    where = store.engine.url.render_as_string(hide_password=True)
    print(f"{where}: " + (", ".join(applied) if applied else "already up to date"))
    return 0


def make_runner(
    settings: Settings,
    store: Store,
    queue: Queue,
    handlers: Mapping[str, JobHandler],
) -> Runner:
    """The worker for this backend, with the settings' slots: runs sized to the host unless
    SHIPMATE_WORKER_CONCURRENCY (or --concurrency) says, and webhook-only slots besides."""
    from bot.jobs.maintenance import retention

    jobs = dict(handlers)
    if isinstance(queue, SQLQueue):
        return Worker(
            queue,
            jobs,
            concurrency=settings.worker_concurrency or host_capacity(),
            dedicated={"webhook": settings.webhook_concurrency},
            lease_seconds=settings.job_lease_seconds,
            grace_seconds=settings.worker_grace_seconds,
            delivery_fields=store.delivery_log_fields,
            heartbeat_seconds=settings.worker_heartbeat_seconds,
        )
    from bot.jobs.procrastinate_queue import ProcrastinateQueue
    from bot.jobs.procrastinate_worker import ProcrastinateWorker, Timing

    assert isinstance(queue, ProcrastinateQueue)

    async def retain() -> None:
        await asyncio.to_thread(retention, settings, store, queue)

    return ProcrastinateWorker(
        queue,
        jobs,
        concurrency=settings.worker_concurrency or host_capacity(),
        webhook_concurrency=settings.webhook_concurrency,
        max_attempts=settings.job_max_attempts,
        timing=Timing(
            heartbeat_seconds=settings.worker_heartbeat_seconds,
            stalled_seconds=settings.worker_stalled_seconds,
            grace_seconds=settings.worker_grace_seconds,
        ),
        delivery_fields=store.delivery_log_fields,
        maintenance=retain,
    )
