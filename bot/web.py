"""The HTTP side: webhook intake, health, and the setup page. Intake verifies, stores, answers;
all other work happens in a job.

Storing is group-committed: deliveries that arrive while a commit is in flight are written
together in the next one, so throughput does not stop at one fsync-bound commit per request,
and each request still gets its 2xx only after its own row is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from bot.config import Settings
from bot.manifest import (
    build_manifest,
    github_web_url,
    new_state,
    save_credentials,
    setup_page,
)
from bot.routing import Router
from bot.store import Delivery, DeliveryStatus, Store
from bot.webhooks import MAX_BODY_BYTES, WebhookError, parse_request

log = structlog.get_logger("shipmate.web")


class DeliveryWriter:
    """Batches concurrent deliveries into one transaction each (group commit)."""

    def __init__(self, store: Store, on_queued: Callable[[], None] | None = None) -> None:
        self.store = store
        self.on_queued = on_queued
        self._pending: list[tuple[Delivery, asyncio.Future[DeliveryStatus]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, delivery: Delivery) -> DeliveryStatus:
        future: asyncio.Future[DeliveryStatus] = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                statuses = await asyncio.to_thread(
                    self.store.accept_deliveries, [d for d, _ in batch]
                )
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), status in zip(batch, statuses, strict=True):
                if not future.done():
                    future.set_result(status)
            if self.on_queued is not None and "queued" in statuses:
                self.on_queued()


def _reply(status_code: int, status: str, delivery: str | None, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": status, "delivery": delivery, **extra}, status_code=status_code)


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` (reading stops there)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_endpoint(
    secrets: Callable[[], Sequence[str]], writer: DeliveryWriter, router: Router
) -> Callable[[Request], Awaitable[Response]]:
    async def receive(request: Request) -> Response:
        delivery_id = request.headers.get("x-github-delivery")
        if request.method != "POST":
            return _reply(405, "error", delivery_id, error="use POST for webhook deliveries")
        body = await _read_capped(request, MAX_BODY_BYTES)
        if body is None:
            return _reply(413, "error", delivery_id, error="body is larger than 25 MiB")
        try:
            incoming = parse_request(request.headers, body, secrets())
        except WebhookError as exc:
            return _reply(exc.status, "error", delivery_id, error=exc.message)
        delivery = Delivery(
            delivery_id=incoming.delivery_id,
            event=incoming.event,
            action=incoming.action,
            payload=incoming.raw_json,
            handled=router.handles(incoming.event, incoming.action),
            installation_id=incoming.installation_id,
            repository=incoming.repository,
        )
        try:
            status = await writer.submit(delivery)
        except Exception as exc:
            log.error("delivery.store_failed", error=type(exc).__name__)
            return _reply(503, "error", incoming.delivery_id, error="could not store the delivery")
        if status == "duplicate":
            return _reply(200, "duplicate", incoming.delivery_id)
        if incoming.event == "ping":
            return _reply(200, "pong", incoming.delivery_id)
        return _reply(202, status, incoming.delivery_id)

    return receive


def create_app(
    settings: Settings,
    store: Store,
    router: Router,
    *,
    on_queued: Callable[[], None] | None = None,
    lifespan: Any = None,
) -> Starlette:
    writer = DeliveryWriter(store, on_queued)
    states: set[str] = set()

    def secrets() -> Sequence[str]:
        return settings.secrets

    async def healthz(request: Request) -> Response:
        ok = await asyncio.to_thread(store.ping)
        return JSONResponse(
            {"status": "ok" if ok else "unavailable"}, status_code=200 if ok else 503
        )

    async def index(request: Request) -> Response:
        state = new_state()
        states.add(state)
        base = str(request.base_url).rstrip("/")
        manifest = build_manifest(base)
        page = setup_page(
            manifest,
            github_web_url(settings.github_api_url),
            state,
            registered=settings.has_app_credentials,
        )
        return HTMLResponse(page)

    async def callback(request: Request) -> Response:
        code = request.query_params.get("code")
        state = request.query_params.get("state")
        if not code:
            return HTMLResponse("<p>GitHub did not send a code.</p>", status_code=400)
        if state not in states:
            return HTMLResponse("<p>Unknown or expired registration; start again at /.</p>", 400)
        states.discard(state)
        url = f"{settings.github_api_url.rstrip('/')}/app-manifests/{code}/conversions"
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(url, headers={"Accept": "application/vnd.github+json"})
        if answer.status_code != 201:
            return HTMLResponse(
                f"<p>GitHub refused the code ({answer.status_code}); start again at /.</p>", 502
            )
        path = save_credentials(settings.data_dir, answer.json())
        log.info("app.registered", path=str(path))
        return HTMLResponse(
            "<p>Registered. Restart <code>shipmate serve</code> to use the new App, then "
            "install it on your repositories.</p>"
        )

    routes = [
        Route(
            "/api/github/webhooks",
            webhook_endpoint(secrets, writer, router),
            methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        ),
        Route("/healthz", healthz),
        Route("/", index),
        Route("/setup/callback", callback),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
