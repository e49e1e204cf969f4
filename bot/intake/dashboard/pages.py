"""What every dashboard page shares: the settings, `DashboardViews` for what the viewer may
see, and rendering, which passes each page through outbound redaction before it leaves. The
pages themselves live by family (runs, deliveries, queue, repos, costs, sign-in), each with its
routes."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.config import Settings
from bot.db.views import DashboardViews
from bot.intake.dashboard.session import Viewer, csrf_token, signed_in
from bot.security.redact import redact

ViewerPage = Callable[[Request, Viewer], Awaitable[Response]]
# The pages linked from the header, in its order: route name -> title (and the link's label).
# Each is rendered from its own template, `<name>.html`.
SECTIONS = {
    "runs": "Runs",
    "deliveries": "Deliveries",
    "queue": "Queue",
    "repos": "Repositories",
    "costs": "Costs",
}


def when(at: float | None) -> str:
    return "" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def page(path: str, name: str, endpoint: ViewerPage) -> Route:
    """A page for a signed-in viewer; anyone else signs in first."""
    return Route(path, signed_in(endpoint), name=name)


def form_post(path: str, name: str, endpoint: ViewerPage) -> Route:
    """Where a page's form posts, for a signed-in viewer (the endpoint checks the form)."""
    return Route(path, signed_in(endpoint), methods=["POST"], name=name)


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
        html = template.render(
            url=url, csrf=csrf_token(request), web=self.web_url, sections=SECTIONS, **values
        )
        return HTMLResponse(redact(html, self.known()), status_code=code)

    def section(self, request: Request, viewer: Viewer, name: str, **values: Any) -> Response:
        """One of the header's pages, its link marked as the one shown."""
        title = SECTIONS[name]
        return self.render(request, f"{name}.html", title=title, here=name, viewer=viewer, **values)

    def back(self, request: Request, route: str, flash: str) -> Response:
        request.session["flash"] = flash
        return RedirectResponse(str(request.url_for(route).path), status_code=303)


@dataclass
class PageFamily(ABC):
    """A family of pages (a module), drawn with what every page shares."""

    pages: Pages

    @abstractmethod
    def routes(self) -> list[Route]: ...
