"""The worker on PostgreSQL: procrastinate's `Worker` runs our job handlers.

procrastinate fetches (its lock and queueing lock hold in its SQL), retries with our backoff,
heartbeats per worker, and hears of aborts by NOTIFY. Two of its workers run in one process:
one on the "run" queue (the slots sized to the host) and one on "webhook" and "maintenance",
so a 👀 never waits behind long runs. Periodic tasks recover the jobs of workers that stopped
beating (killed, or their host gone) and apply retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import procrastinate
import structlog
from procrastinate import exceptions as procrastinate_exceptions
from procrastinate import jobs as procrastinate_jobs
from procrastinate.job_context import AbortReason
from procrastinate.worker import Worker as ProcrastinateJobWorker
from psycopg_pool import AsyncConnectionPool

from bot.db import workers
from bot.jobs.capacity import Load, report_load
from bot.jobs.procrastinate_policy import Retry, attempt_limit, autocommit, conninfo
from bot.jobs.procrastinate_queue import MAINTENANCE_QUEUE, MAX_ATTEMPTS_ARG, ProcrastinateQueue
from bot.jobs.queue import Job
from bot.jobs.worker import DeliveryFields, JobContext, JobHandler, job_log_fields

log = structlog.get_logger("shipmate.worker")

MAINTENANCE = MAINTENANCE_QUEUE


@dataclass(frozen=True)
class Timing:
    """A worker's clock: its heartbeat, when another worker takes a silent one's jobs back
    (stalled), how long SIGTERM waits for running jobs (grace), and its polls."""

    heartbeat_seconds: float = 10.0
    stalled_seconds: float = 30.0
    grace_seconds: float = 30.0
    # Polls are the fallback: NOTIFY wakes the workers for new jobs and aborts.
    poll_seconds: float = 2.0
    abort_poll_seconds: float = 1.0


class ProcrastinateWorker:
    """Runs `handlers` (by job kind) from procrastinate's queues until `stop`."""

    def __init__(
        self,
        queue: ProcrastinateQueue,
        handlers: Mapping[str, JobHandler],
        *,
        concurrency: int,
        webhook_concurrency: int,
        max_attempts: int,
        timing: Timing | None = None,
        delivery_fields: DeliveryFields | None = None,
        maintenance: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.queue = queue
        self.handlers = dict(handlers)
        self.concurrency = max(1, concurrency)
        self.webhook_concurrency = max(1, webhook_concurrency)
        self.max_attempts = max_attempts
        self.timing = timing or Timing()
        self.delivery_fields = delivery_fields
        self.maintenance = maintenance
        self.load = Load(capacity=self.concurrency + self.webhook_concurrency, backend="postgres")
        self.worker_id = self.load.worker_id
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector())
        self._register_tasks()

    def notify(self) -> None:
        """New jobs are announced by NOTIFY (procrastinate's trigger): nothing to do here."""

    def _register_tasks(self) -> None:
        retry = Retry(self.max_attempts)
        for kind, handler in self.handlers.items():
            self.app.task(name=kind, queue=kind, pass_context=True, retry=retry)(
                self._task_for(kind, handler)
            )
        recover = self.app.task(name="shipmate.recover", queue=MAINTENANCE)(self._recover)
        every = max(1, min(59, int(self.timing.stalled_seconds // 3)))
        self.app.periodic(cron=f"* * * * * */{every}", periodic_id="recover")(recover)
        if self.maintenance is not None:
            retain = self.app.task(name="shipmate.retain", queue=MAINTENANCE)(self._retain)
            self.app.periodic(cron="17 * * * *", periodic_id="retain")(retain)

    def _task_for(self, kind: str, handler: JobHandler) -> Callable[..., Awaitable[None]]:
        # A coroutine function, which procrastinate awaits on its own loop (a plain function
        # would cost a hop through its thread pool for every job). procrastinate cancels such
        # a task when a user asks it to stop; `_until_shutdown` turns that back into our
        # cooperative abort (the job polls should_abort and stops cleanly between steps).
        async def task(job_context: procrastinate.JobContext, **payload: Any) -> None:
            await self._run_job(job_context, kind, handler, payload)

        task.__name__ = kind
        return task

    async def _run_job(
        self,
        job_context: procrastinate.JobContext,
        kind: str,
        handler: JobHandler,
        payload: dict[str, Any],
    ) -> None:
        job = self._job_of(job_context, kind, payload)
        fields = await self._log_fields(payload)
        with structlog.contextvars.bound_contextvars(job_id=job.id, kind=kind, **fields):
            context = JobContext(
                job=job,
                queue=self.queue,
                log=log.bind(job_id=job.id),
                abort=job_context.should_abort,
            )
            self.load.running += 1
            started = time.time()
            try:
                await self._until_shutdown(handler(job, context), job_context)
            except procrastinate_exceptions.JobAborted:
                raise
            except Exception as exc:
                log.error("job.failed", attempts=job.attempts, error=f"{type(exc).__name__}: {exc}")
                raise
            finally:
                self.load.running -= 1
            if job_context.abort_reason() is AbortReason.USER_REQUEST:
                log.info("job.aborted", attempts=job.attempts)
                raise procrastinate_exceptions.JobAborted("stopped on request")
            log.info(
                "job.done",
                attempts=job.attempts,
                seconds=round(time.time() - started, 3),
                waited_seconds=round(started - job_context.start_timestamp, 3),
            )

    def _job_of(
        self, job_context: procrastinate.JobContext, kind: str, payload: dict[str, Any]
    ) -> Job:
        """procrastinate's job as ours: its own attempt limit taken out of the payload."""
        limit = attempt_limit(payload, self.max_attempts)
        payload.pop(MAX_ATTEMPTS_ARG, None)
        found = job_context.job
        assert found.id is not None
        return Job(
            id=found.id,
            kind=kind,
            payload=payload,
            attempts=found.attempts + 1,
            max_attempts=limit,
            lock_key=found.lock,
            worker_id=self.worker_id,
        )

    async def _log_fields(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The job's log fields, with its delivery's (event, repository) when it names one."""
        fields = job_log_fields(payload)
        delivery_id = fields.get("delivery_id")
        if self.delivery_fields is not None and delivery_id and "github_event" not in fields:
            found_fields = await asyncio.to_thread(self.delivery_fields, str(delivery_id))
            fields = {**(found_fields or {}), **fields}
        return fields

    async def _until_shutdown(
        self, work: Awaitable[None], job_context: procrastinate.JobContext
    ) -> None:
        """Run `work` to its end. A user's stop reaches it through should_abort, never as a
        cancel mid-step: procrastinate's cancel for it is taken back. When the worker's
        shutdown gives up waiting for it (after the grace time), cancel it and release the
        job (procrastinate puts it back, to run again)."""
        task = asyncio.ensure_future(work)
        while not task.done():
            try:
                await asyncio.wait({task}, timeout=0.25)
            except asyncio.CancelledError:
                if job_context.abort_reason() is None:  # not procrastinate's abort
                    await _cancelled(task)
                    raise
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
            if not task.done() and job_context.abort_reason() is AbortReason.SHUTDOWN:
                await _cancelled(task)
                log.info("job.released")
                raise procrastinate_exceptions.JobAborted("released at shutdown")
        task.result()

    async def _recover(self, timestamp: int) -> None:
        """Jobs left running by a worker that stopped beating go back to wait (or, past their
        attempts, to the dead letters), and the stale workers are forgotten."""
        manager = self.app.job_manager
        stalled = await manager.get_stalled_jobs(
            seconds_since_heartbeat=self.timing.stalled_seconds
        )
        for job in stalled:
            limit = attempt_limit(job.task_kwargs, self.max_attempts)
            try:
                if job.attempts + 1 >= limit or job.task_name.startswith("shipmate."):
                    await manager.finish_job(
                        job, status=procrastinate_jobs.Status.FAILED, delete_job=False
                    )
                    log.warning("job.dead_after_worker_lost", job_id=job.id, kind=job.task_name)
                else:
                    await manager.retry_job(job)
                    log.warning("job.recovered", job_id=job.id, kind=job.task_name)
            except procrastinate_exceptions.ConnectorException as exc:
                # Another recovery, or the worker itself, moved it first.
                log.info("job.recovery_skipped", job_id=job.id, error=str(exc))
        await manager.prune_stalled_workers(self.timing.stalled_seconds)
        await asyncio.to_thread(workers.prune, self.queue.engine, self.timing.stalled_seconds * 2)

    async def _retain(self, timestamp: int) -> None:
        assert self.maintenance is not None
        await self.maintenance()

    def _workers(self) -> list[ProcrastinateJobWorker]:
        common: dict[str, Any] = {
            "fetch_job_polling_interval": self.timing.poll_seconds,
            "abort_job_polling_interval": self.timing.abort_poll_seconds,
            "shutdown_graceful_timeout": self.timing.grace_seconds,
            "install_signal_handlers": False,
            "update_heartbeat_interval": self.timing.heartbeat_seconds,
            "stalled_worker_timeout": self.timing.stalled_seconds,
        }
        runs = [kind for kind in self.handlers if kind != "webhook"]
        job_workers = [
            ProcrastinateJobWorker(
                self.app,
                queues=["webhook", MAINTENANCE],
                name="webhook",
                concurrency=self.webhook_concurrency,
                **common,
            )
        ]
        if runs:
            job_workers.append(
                ProcrastinateJobWorker(
                    self.app, queues=runs, name="runs", concurrency=self.concurrency, **common
                )
            )
        return job_workers

    async def run(self, stop: asyncio.Event) -> None:
        """Run jobs until `stop`; then drain: no new job is taken, the running ones get the
        grace time to finish and are released after it."""
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
        url = str(self.queue.engine.url.render_as_string(hide_password=False))
        size = self.concurrency + self.webhook_concurrency + 2
        pool = AsyncConnectionPool(
            conninfo(url), min_size=2, max_size=size, configure=autocommit, open=False
        )
        await pool.open(wait=True)
        store = self.queue.store
        reporting = asyncio.create_task(
            report_load(store, self.load, stop, self.timing.heartbeat_seconds)
        )
        try:
            async with self.app.open_async(pool=pool):
                job_workers = self._workers()
                running = [asyncio.create_task(worker.run()) for worker in job_workers]  # type: ignore[no-untyped-call]
                log.info("worker.started", worker_id=self.worker_id, capacity=self.load.capacity)
                await _first(stop, running)
                self.load.state = "draining"
                await asyncio.to_thread(self.load.report, store)
                for worker in job_workers:
                    worker.stop()  # type: ignore[no-untyped-call]
                await asyncio.gather(*running)
        finally:
            reporting.cancel()
            await pool.close()
            await asyncio.to_thread(workers.remove, store.engine, self.worker_id)


async def _cancelled(task: asyncio.Future[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _first(stop: asyncio.Event, running: list[asyncio.Task[None]]) -> None:
    """Until `stop`, or until one of procrastinate's workers ends by itself (an error)."""
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([stopping, *running], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    for task in running:
        if task.done() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
