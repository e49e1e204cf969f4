"""The intake's group commit: deliveries that arrive while a commit is in flight are written
together in the next one, and each request gets its 2xx only after its own row is committed.
And the rate they arrive at, which the in-process worker steps back for."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from bot.db.deliveries import Delivery, DeliveryStatus
from bot.jobs.queue import Queue

# Above this many deliveries a second the in-process worker yields to the intake.
BUSY_RATE = 400.0
RATE_WINDOW_SECONDS = 0.25

Stored = Callable[[], int]


class DeliveryWriter:
    """Batches concurrent deliveries into one transaction each (group commit).

    On SQLite the commit is short (WAL, no fsync per commit) and runs on the event loop itself,
    once per loop iteration, for every delivery parsed in that iteration: no thread hand-off per
    request. On a networked database the commit runs in a thread and the next batch collects
    while it is in flight.
    """

    def __init__(
        self,
        queue: Queue,
        *,
        inline: bool,
        on_queued: Callable[[], None] | None = None,
        stored: Stored | None = None,
    ) -> None:
        self.queue = queue
        self.on_queued = on_queued
        self.inline = inline
        # How many deliveries the database has had, stored by every process on it (a running
        # count); without it, the rate is this process's alone.
        self.stored = stored
        self._pending: list[tuple[Delivery, asyncio.Future[DeliveryStatus]]] = []
        self._scheduled = False
        self._flusher: asyncio.Task[None] | None = None
        self._window_start = time.monotonic()
        self._window_count = 0
        self._rate = 0.0
        self._sampled_at = -math.inf  # the first call samples
        self._sampled = -1
        self._shared_rate = 0.0

    def busy(self) -> bool:
        """Whether deliveries are arriving faster than BUSY_RATE a second just now: the
        in-process worker then steps back, so a burst is answered (and stored) first. With
        `stored`, deliveries to every process of `serve --workers N` count: the kernel hands
        each process its own share of the connections, often an uneven one, and the leading
        process (whose worker steps back) may hold few of them while the others are flooded."""
        return self._local_busy() or (self.stored is not None and self._shared_busy(self.stored))

    def _local_busy(self) -> bool:
        if time.monotonic() - self._window_start > 2 * RATE_WINDOW_SECONDS:
            return False
        return self._rate >= BUSY_RATE

    def _shared_busy(self, stored: Stored) -> bool:
        now = time.monotonic()
        elapsed = now - self._sampled_at
        if elapsed >= RATE_WINDOW_SECONDS:
            count = stored()
            # A rate over a window; after a longer pause (the worker ran a job) a new sample.
            fresh = self._sampled >= 0 and elapsed <= 2 * RATE_WINDOW_SECONDS
            self._shared_rate = (count - self._sampled) / elapsed if fresh else 0.0
            self._sampled, self._sampled_at = count, now
        return self._shared_rate >= BUSY_RATE

    def _count(self) -> None:
        now = time.monotonic()
        self._window_count += 1
        elapsed = now - self._window_start
        if elapsed >= RATE_WINDOW_SECONDS:
            self._rate = self._window_count / elapsed
            self._window_start, self._window_count = now, 0

    async def submit(self, delivery: Delivery) -> DeliveryStatus:
        self._count()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[DeliveryStatus] = loop.create_future()
        self._pending.append((delivery, future))
        if self.inline:
            if not self._scheduled:
                self._scheduled = True
                loop.call_soon(self._flush_inline)
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_in_thread())
        return await future

    def _flush_inline(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        try:
            statuses = self.queue.enqueue_deliveries([d for d, _ in batch])
        except Exception as exc:
            self._fail(batch, exc)
            return
        self._resolve(batch, statuses)

    async def _flush_in_thread(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                statuses = await asyncio.to_thread(
                    self.queue.enqueue_deliveries, [d for d, _ in batch]
                )
            except Exception as exc:
                self._fail(batch, exc)
                continue
            self._resolve(batch, statuses)

    @staticmethod
    def _fail(batch: list[tuple[Delivery, asyncio.Future[DeliveryStatus]]], exc: Exception) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)

    def _resolve(
        self,
        batch: list[tuple[Delivery, asyncio.Future[DeliveryStatus]]],
        statuses: list[DeliveryStatus],
    ) -> None:
        for (_, future), status in zip(batch, statuses, strict=True):
            if not future.done():
                future.set_result(status)
        if self.on_queued is not None and "queued" in statuses:
            self.on_queued()
