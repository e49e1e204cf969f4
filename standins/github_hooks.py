"""The GitHub stand-in's record of the webhook deliveries it sent, and GitHub's App delivery API
over it (App JWT): `GET /app/hook/deliveries` (newest first, cursor paging with a `link`
header) and `POST /app/hook/deliveries/{id}/attempts`, which sends the same delivery again —
the same `X-GitHub-Delivery`, headers and body — as a new attempt marked `redelivery`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from standins.github_common import App, Call, NotFound, query_int

if TYPE_CHECKING:
    from standins.github import GitHubStandIn


@dataclass
class Sent:
    """One attempt at a delivery, and how the receiver answered it."""

    id: int
    app_id: int | None
    to: str
    headers: dict[str, str]
    body: bytes
    event: str
    action: str | None
    installation_id: int | None
    repository_id: int | None
    redelivery: bool = False
    status_code: int = 0
    duration: float = 0.0
    at: float = field(default_factory=time.time)

    @property
    def guid(self) -> str:
        return self.headers["X-GitHub-Delivery"]

    def item(self) -> dict[str, Any]:
        """As GitHub lists it (githubkit's HookDeliveryItem)."""
        ok = 200 <= self.status_code < 300
        return {
            "id": self.id,
            "guid": self.guid,
            "delivered_at": datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "redelivery": self.redelivery,
            "duration": round(self.duration, 3),
            "status": "OK" if ok else f"Invalid HTTP Response: {self.status_code}",
            "status_code": self.status_code,
            "event": self.event,
            "action": self.action,
            "installation_id": self.installation_id,
            "repository_id": self.repository_id,
            "throttled_at": None,
        }


class HookDeliveries:
    def __init__(self, gh: GitHubStandIn) -> None:
        self.gh = gh
        self.sent: list[Sent] = []

    def record(
        self,
        to: str,
        headers: Mapping[str, str],
        body: bytes,
        payload: Mapping[str, Any],
        answer: httpx.Response | None,
        duration: float,
    ) -> Sent:
        installation_id = (payload.get("installation") or {}).get("id")
        installation = self.gh.installations.get(int(installation_id or 0))
        sent = Sent(
            id=self.gh.next_id(),
            app_id=installation.app.id if installation else None,
            to=to,
            headers=dict(headers),
            body=body,
            event=headers.get("X-GitHub-Event", ""),
            action=payload.get("action"),
            installation_id=installation_id,
            repository_id=(payload.get("repository") or {}).get("id"),
            status_code=answer.status_code if answer is not None else 0,
            duration=duration,
        )
        self.sent.append(sent)
        return sent

    def of(self, app: App) -> list[Sent]:
        """The App's deliveries, newest first."""
        mine = [s for s in self.sent if s.app_id in (app.id, None)]
        return sorted(mine, key=lambda s: s.id, reverse=True)

    def listed(self, request: Request, app: App) -> Response:
        listed = self.of(app)
        per_page = min(100, max(1, query_int(request, "per_page", 30)))
        cursor = request.query_params.get("cursor", "")
        start = 0
        if cursor:
            ids = [s.id for s in listed]
            start = ids.index(int(cursor)) if cursor.isdigit() and int(cursor) in ids else 0
        page = listed[start : start + per_page]
        headers = {}
        if start + per_page < len(listed):
            following = listed[start + per_page].id
            base = str(request.url.remove_query_params("cursor"))
            sep = "&" if "?" in base else "?"
            headers["link"] = f'<{base}{sep}cursor={following}>; rel="next"'
        return self.gh._json([s.item() for s in page], headers=headers)

    async def redeliver(self, app: App, number: int) -> Response:
        original = next((s for s in self.of(app) if s.id == number), None)
        if original is None:
            raise NotFound
        started = time.monotonic()
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                answer: httpx.Response | None = await client.post(
                    original.to, content=original.body, headers=original.headers
                )
        except httpx.TransportError:
            answer = None
        again = self.record(
            original.to,
            original.headers,
            original.body,
            {"installation": {"id": original.installation_id}, "action": original.action},
            answer,
            time.monotonic() - started,
        )
        again.redelivery, again.repository_id = True, original.repository_id
        return self.gh._json({}, 202)


# The route table's handlers (standins/github_routes.py), behind the App's JWT.


def list_deliveries(gh: GitHubStandIn, call: Call) -> Response:
    assert call.app is not None
    return gh.hooks.listed(call.request, call.app)


async def redeliver(gh: GitHubStandIn, call: Call) -> Response:
    assert call.app is not None
    return await gh.hooks.redeliver(call.app, call.number("delivery_id"))
