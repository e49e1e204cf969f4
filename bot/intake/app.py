"""The HTTP side: webhook intake, health, and the setup page. Intake verifies, stores, answers;
all other work happens in a job.

Storing is group-committed: deliveries that arrive while a commit is in flight are written
together in the next one, so throughput does not stop at one fsync-bound commit per request,
and each request still gets its 2xx only after its own row is committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from bot.config import Settings
from bot.db.deliveries import Delivery, DeliveryStatus
from bot.db.store import Store
from bot.github.auth import GitHubApp
from bot.intake.dashboard import dashboard_app
from bot.intake.registration import registration_routes
from bot.intake.webhooks import MAX_BODY_BYTES, WebhookError, parse_request
from bot.jobs.queue import Queue
from bot.jobs.sql import SQLQueue
from bot.triggers.routing import Router

log = structlog.get_logger("shipmate.web")

WEBHOOK_PATH = "/api/github/webhooks"
# Above this many deliveries a second the in-process worker yields to the intake.
BUSY_RATE = 400.0
RATE_WINDOW_SECONDS = 0.25


class DeliveryWriter:
    """Batches concurrent deliveries into one transaction each (group commit).

    On SQLite the commit is short (WAL, no fsync per commit) and runs on the event loop itself,
    once per loop iteration, for every delivery parsed in that iteration: no thread hand-off per
    request. On a networked database the commit runs in a thread and the next batch collects
    while it is in flight.
    """

    def __init__(
        self, queue: Queue, *, inline: bool, on_queued: Callable[[], None] | None = None
    ) -> None:
        self.queue = queue
        self.on_queued = on_queued
        self.inline = inline
        self._pending: list[tuple[Delivery, asyncio.Future[DeliveryStatus]]] = []
        self._scheduled = False
        self._flusher: asyncio.Task[None] | None = None
        self._window_start = time.monotonic()
        self._window_count = 0
        self._rate = 0.0

    def busy(self) -> bool:
        """Whether deliveries are arriving faster than BUSY_RATE a second just now: the
        in-process worker then steps back, so a burst is answered (and stored) first."""
        if time.monotonic() - self._window_start > 2 * RATE_WINDOW_SECONDS:
            return False
        return self._rate >= BUSY_RATE

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


def _json_reply(
    status_code: int, status: str, delivery: str | None, **extra: Any
) -> tuple[int, bytes]:
    return status_code, orjson.dumps({"status": status, "delivery": delivery, **extra})


class WebhookIntake:
    """`POST /api/github/webhooks` as a lean ASGI app: the hot path skips the framework.

    Verify, store (group commit), answer; nothing else happens here.
    """

    def __init__(
        self, secrets: Callable[[], Sequence[str]], writer: DeliveryWriter, router: Router
    ) -> None:
        self.secrets = secrets
        self.writer = writer
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        status_code, body = await self.handle(scope["method"], headers, receive)
        if status_code in (400, 401, 405, 413):
            _log_rejection(status_code, body, headers, scope.get("client"))
        reply_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status_code == 405:
            reply_headers.append((b"allow", b"POST"))
        await send({"type": "http.response.start", "status": status_code, "headers": reply_headers})
        await send({"type": "http.response.body", "body": body})

    async def handle(
        self, method: str, headers: dict[str, str], receive: Receive
    ) -> tuple[int, bytes]:
        delivery_id = headers.get("x-github-delivery")
        if method != "POST":
            return _json_reply(405, "error", delivery_id, error="use POST for webhook deliveries")
        body = await _read_capped(headers, receive, MAX_BODY_BYTES)
        if body is None:
            return _json_reply(413, "error", delivery_id, error="body is larger than 25 MiB")
        try:
            incoming = parse_request(headers, body, self.secrets())
        except WebhookError as exc:
            return _json_reply(exc.status, "error", delivery_id, error=exc.message)
        delivery = Delivery(
            delivery_id=incoming.delivery_id,
            event=incoming.event,
            action=incoming.action,
            payload=incoming.raw_json,
            handled=self.router.handles(incoming.event, incoming.action),
            installation_id=incoming.installation_id,
            repository=incoming.repository,
            digest=incoming.digest,
            number=incoming.number,
        )
        try:
            status = await self.writer.submit(delivery)
        except Exception as exc:
            log.error("delivery.store_failed", error=type(exc).__name__)
            return _json_reply(
                503, "error", incoming.delivery_id, error="could not store the delivery"
            )
        if status == "duplicate":
            return _json_reply(200, "duplicate", incoming.delivery_id)
        if incoming.event == "ping":
            return _json_reply(200, "pong", incoming.delivery_id)
        return _json_reply(202, status, incoming.delivery_id)


def _log_rejection(status_code: int, body: bytes, headers: dict[str, str], client: Any) -> None:
    """Why a delivery was refused, as the reply said it (the reason never holds the secret or
    the signature); GitHub's headers cut short, as the sender chose them."""
    log.warning(
        "webhook.rejected",
        status=status_code,
        reason=orjson.loads(body).get("error"),
        delivery_id=headers.get("x-github-delivery", "")[:64] or None,
        github_event=headers.get("x-github-event", "")[:64] or None,
        client=client[0] if client else None,
    )


async def _read_capped(headers: dict[str, str], receive: Receive, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` (reading stops there)."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class ShipmateApp:
    """The webhook path goes straight to the intake; everything else to Starlette."""

    def __init__(self, intake: WebhookIntake, rest: Starlette) -> None:
        self.intake = intake
        self.rest = rest

    def busy(self) -> bool:
        return self.intake.writer.busy()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == WEBHOOK_PATH:
            await self.intake(scope, receive, send)
        else:
            await self.rest(scope, receive, send)


def dashboard_for(settings: Settings, store: Store, queue: Queue) -> Starlette:
    """The dashboard, with redelivery through the App when one is configured."""
    redeliver = GitHubApp(settings).redeliver if settings.has_app_credentials else None
    return dashboard_app(settings, store, queue, redeliver=redeliver)


def create_app(
    settings: Settings,
    store: Store,
    router: Router,
    *,
    on_queued: Callable[[], None] | None = None,
    lifespan: Any = None,
    queue: Queue | None = None,
) -> ShipmateApp:
    queue = queue or SQLQueue(store)
    writer = DeliveryWriter(queue, inline=store.dialect == "sqlite", on_queued=on_queued)

    def secrets() -> Sequence[str]:
        return settings.secrets

    async def healthz(request: Request) -> Response:
        ok = await asyncio.to_thread(store.ping)
        return JSONResponse(
            {"status": "ok" if ok else "unavailable"}, status_code=200 if ok else 503
        )

    routes = [
        Route("/healthz", healthz),
        *registration_routes(settings),
        Mount("/dashboard", app=dashboard_for(settings, store, queue)),
    ]
    return ShipmateApp(
        WebhookIntake(secrets, writer, router), Starlette(routes=routes, lifespan=lifespan)
    )
