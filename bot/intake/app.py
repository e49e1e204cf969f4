"""The HTTP side: webhook intake, health, and the setup page. Intake verifies, stores, answers;
all other work happens in a job.

Storing is group-committed (writer.py): deliveries that arrive while a commit is in flight are
written together in the next one, so throughput does not stop at one fsync-bound commit per
request, and each request still gets its 2xx only after its own row is committed.
"""

from __future__ import annotations

import asyncio
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
from bot.db.deliveries import Delivery
from bot.db.store import Store
from bot.github.auth import GitHubApp
from bot.intake.dashboard import dashboard_app
from bot.intake.registration import registration_routes
from bot.intake.webhooks import MAX_BODY_BYTES, WebhookError, parse_request
from bot.intake.writer import DeliveryWriter
from bot.jobs.queue import Queue
from bot.jobs.sql import SQLQueue
from bot.triggers.routing import Router

log = structlog.get_logger("shipmate.web")

WEBHOOK_PATH = "/api/github/webhooks"


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
    sqlite = store.dialect == "sqlite"
    writer = DeliveryWriter(
        queue,
        inline=sqlite,
        on_queued=on_queued,
        stored=store.deliveries_stored if sqlite else None,
    )

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
