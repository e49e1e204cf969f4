"""The worker: claims jobs, runs their handler with a heartbeat, retries or dead-letters failures,
and shuts down cleanly (stop claiming, let the current job finish, else release it)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from bot.db import workers
from bot.jobs.capacity import Load, report_load
from bot.jobs.queue import Job, Queue
from bot.jobs.sql import SQLQueue

log = structlog.get_logger("shipmate.worker")


@dataclass
class JobContext:
    """What a job handler gets besides the job: cooperative cancel and a bound logger.

    `abort` is the backend's own answer to "was this job asked to stop?" (procrastinate's
    worker knows it in memory, by NOTIFY); without it the queue is asked."""

    job: Job
    queue: Queue
    log: Any
    abort: Callable[[], bool] | None = None

    def should_abort(self) -> bool:
        if self.abort is not None:
            return self.abort()
        return self.queue.should_abort(self.job.id)

    async def should_abort_async(self) -> bool:
        if self.abort is not None:
            return self.abort()
        return await asyncio.to_thread(self.queue.should_abort, self.job.id)


JobHandler = Callable[[Job, JobContext], Coroutine[Any, Any, None]]


class JobRejected(Exception):
    """Raised by a handler for a job that no retry can mend (its payload is not what the kind
    takes): the job is dead-lettered at once with this message, not retried."""


# Payload key -> log key. The GitHub event is logged as `event` (see bot/logs.py).
_LOG_FIELDS = {
    "delivery_id": "delivery_id",
    "event": "github_event",
    "repo": "repo",
    "installation_id": "installation_id",
    "run_id": "run_id",
}

# A delivery id -> the log fields of its delivery (github_event, repo, installation_id).
DeliveryFields = Callable[[str], Mapping[str, Any] | None]


def job_log_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {log_key: payload[key] for key, log_key in _LOG_FIELDS.items() if key in payload}


class Worker:
    def __init__(
        self,
        queue: SQLQueue,
        handlers: Mapping[str, JobHandler],
        *,
        concurrency: int = 1,
        dedicated: Mapping[str, int] | None = None,
        lease_seconds: float = 60.0,
        poll_seconds: float = 0.2,
        grace_seconds: float = 30.0,
        worker_id: str | None = None,
        delivery_fields: DeliveryFields | None = None,
        heartbeat_seconds: float = 10.0,
    ) -> None:
        self.queue = queue
        self.handlers = dict(handlers)
        self.concurrency = max(1, concurrency)
        # Slots that only ever take jobs of one kind, so quick webhook jobs never queue behind
        # long runs in the shared slots.
        self.dedicated = {kind: n for kind, n in (dedicated or {}).items() if n > 0}
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.grace_seconds = grace_seconds
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        capacity = self.concurrency + sum(self.dedicated.values())
        self.load = Load(capacity=capacity, backend="sql", worker_id=self.worker_id)
        self.heartbeat_seconds = heartbeat_seconds
        self.wake = asyncio.Event()
        self.delivery_fields = delivery_fields
        # In `serve`: whether the intake in this process is taking a burst of deliveries. The
        # jobs are stored, so the worker then takes at most one per slot every
        # `busy_claim_seconds` and catches up when the burst is over.
        self.yield_to: Callable[[], bool] | None = None
        self.busy_claim_seconds = 1.0

    def notify(self) -> None:
        """A job was just enqueued: look now instead of at the next poll."""
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Run jobs until `stop` is set; then finish (or release) the ones under way."""
        lanes: list[tuple[str, ...] | None] = [None] * self.concurrency
        for kind, count in self.dedicated.items():
            lanes += [(kind,)] * count
        slots = [asyncio.create_task(self._slot(stop, kinds)) for kinds in lanes]
        store = self.queue.store
        reporting = asyncio.create_task(report_load(store, self.load, stop, self.heartbeat_seconds))
        try:
            await stop.wait()
            self.load.state = "draining"
            await asyncio.to_thread(self.load.report, store)
            await asyncio.gather(*slots)
        finally:
            reporting.cancel()
            await asyncio.to_thread(workers.remove, store.engine, self.worker_id)

    async def _step_back(self, stop: asyncio.Event) -> None:
        """While the intake is busy, wait (up to `busy_claim_seconds`) before the next claim."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.busy_claim_seconds
        while self.yield_to is not None and self.yield_to() and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)
                return

    async def _slot(self, stop: asyncio.Event, kinds: tuple[str, ...] | None) -> None:
        while not stop.is_set():
            await self._step_back(stop)
            job = await asyncio.to_thread(
                self.queue.claim, self.worker_id, self.lease_seconds, kinds
            )
            if job is None:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    waiters = [
                        asyncio.ensure_future(stop.wait()),
                        asyncio.ensure_future(self.wake.wait()),
                    ]
                    _, pending = await asyncio.wait(
                        waiters, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
                    )
                    for waiter in pending:
                        waiter.cancel()
                continue
            await self._run_job(job, stop)

    async def run_until_idle(self) -> int:
        """Run due jobs one by one until none is left; return how many ran (for tests and CLI)."""
        count = 0
        never = asyncio.Event()
        while True:
            job = await asyncio.to_thread(self.queue.claim, self.worker_id, self.lease_seconds)
            if job is None:
                return count
            await self._run_job(job, never)
            count += 1

    async def _run_job(self, job: Job, stop: asyncio.Event) -> None:
        bound = await self._log_fields(job)
        with structlog.contextvars.bound_contextvars(job_id=job.id, kind=job.kind, **bound):
            handler = self.handlers.get(job.kind)
            if handler is None:
                await asyncio.to_thread(
                    self.queue.fail, job, f"no handler for job kind {job.kind!r}"
                )
                log.error("job.unknown_kind")
                return
            context = JobContext(job=job, queue=self.queue, log=log.bind(job_id=job.id))
            self.load.running += 1
            try:
                await self._supervise(job, handler(job, context), stop)
            finally:
                self.load.running -= 1

    async def _supervise(
        self, job: Job, work: Coroutine[Any, Any, None], stop: asyncio.Event
    ) -> None:
        """Run the job's handler with its heartbeat; at `stop`, give it the grace time, then
        release it."""
        task = asyncio.create_task(work)
        beat = asyncio.create_task(self._heartbeat(job, task))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                log.info("job.finishing_before_shutdown", grace_seconds=self.grace_seconds)
                await asyncio.wait({task}, timeout=self.grace_seconds)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                await asyncio.to_thread(self.queue.release, job)
                log.info("job.released")
                return
        finally:
            beat.cancel()
            stopping.cancel()
        await self._settle(job, task)

    async def _log_fields(self, job: Job) -> dict[str, Any]:
        """delivery_id, github_event, repo and installation_id for every line of the job; a job
        whose payload names only its delivery (a run) gets the rest from the delivery."""
        fields = job_log_fields(job.payload)
        delivery_id = fields.get("delivery_id")
        if self.delivery_fields is not None and delivery_id and "github_event" not in fields:
            found = await asyncio.to_thread(self.delivery_fields, str(delivery_id))
            fields = {**(found or {}), **fields}
        return fields

    async def _settle(self, job: Job, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            # Only the heartbeat cancels a job here: its lease went to another worker.
            log.warning("job.abandoned_after_lease_loss")
            return
        error = task.exception()
        if error is None:
            if await asyncio.to_thread(self.queue.complete, job):
                log.info("job.done", attempts=job.attempts)
            else:
                log.warning("job.done_after_lease_loss", attempts=job.attempts)
            return
        if isinstance(error, JobRejected):
            # A job at its last attempt is dead-lettered, not retried (Queue.fail).
            job = dataclasses.replace(job, max_attempts=job.attempts)
        outcome = await asyncio.to_thread(self.queue.fail, job, f"{type(error).__name__}: {error}")
        log.error(
            "job.failed",
            outcome=outcome,
            attempts=job.attempts,
            error=f"{type(error).__name__}: {error}",
        )

    async def _heartbeat(self, job: Job, task: asyncio.Task[None]) -> None:
        while not task.done():
            await asyncio.sleep(self.lease_seconds / 3)
            kept = await asyncio.to_thread(
                self.queue.heartbeat, job, self.worker_id, self.lease_seconds
            )
            if not kept:
                log.warning("job.lease_lost")
                task.cancel()
                return


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set `stop` (a second one is left to the default: exit now)."""
    loop = asyncio.get_running_loop()

    def handle(sig: signal.Signals) -> None:
        log.info("shutdown.requested", signal=sig.name)
        stop.set()
        loop.remove_signal_handler(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle, sig)
