"""What every dashboard page shares: the settings, `DashboardViews` for what the viewer may
see, and rendering, which passes each page through outbound redaction before it leaves. The
pages themselves live by family (runs, deliveries, queue, repos, costs, sign-in), each with its
routes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.config import Settings
from bot.db.views import DashboardViews
from bot.intake.dashboard.session import csrf_token
from bot.security.redact import redact


def when(at: float | None) -> str:
    return "" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


class PageFamily(Protocol):
    def routes(self) -> list[Route]: ...


@dataclass
class Pages:
    settings: Settings
    views: DashboardViews
    web_url: str
    known: Callable[[], tuple[str, ...]]

    def __post_init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("bot.intake.dashboard", "templates"),
            autoescape=select_autoescape(["html"]),
        )

    def render(self, request: Request, name: str, code: int = 200, **values: Any) -> Response:
        def url(route: str, **params: Any) -> str:
            return str(request.url_for(route, **params).path)

        template = self.env.get_template(name)
        flash = request.session.pop("flash", None)
        values.setdefault("flash", flash)  # a page's own message wins over the last one's
        html = template.render(url=url, csrf=csrf_token(request), web=self.web_url, **values)
        return HTMLResponse(redact(html, self.known()), status_code=code)

    def back(self, request: Request, route: str, flash: str) -> Response:
        request.session["flash"] = flash
        return RedirectResponse(str(request.url_for(route).path), status_code=303)
