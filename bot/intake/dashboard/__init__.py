"""The operator's dashboard, served by `shipmate serve` under /dashboard: runs, one run (plan,
transcript, diff, tests, egress, GitHub actions, cost), deliveries (redeliver), the queue (retry
or drop a dead job), repositories and costs. Server-rendered (Jinja2), no build step. Each
family of pages is a module with its routes; this composes them behind the session cookie."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware

from bot.config import Settings
from bot.db.views import DashboardViews
from bot.github.manifest import github_web_url
from bot.intake.dashboard import session
from bot.intake.dashboard.deliveries import DeliveryPages
from bot.intake.dashboard.pages import PageFamily, Pages
from bot.intake.dashboard.queue import QueuePages
from bot.intake.dashboard.repos import RepoPages
from bot.intake.dashboard.runs import RunPages
from bot.intake.dashboard.signin import SignIn
from bot.sandbox.operator_secrets import held_secrets


def dashboard_app(
    settings: Settings,
    store: Any,
    queue: Any,
    *,
    redeliver: Callable[[str], Awaitable[bool]] | None = None,
    root: str = "/dashboard",
) -> Starlette:
    pages = Pages(
        settings,
        DashboardViews(store.engine),
        github_web_url(settings.github_api_url),
        lambda: tuple(held_secrets(settings)),
    )
    families: tuple[PageFamily, ...] = (
        RunPages(pages),
        DeliveryPages(pages, redeliver),
        QueuePages(pages, queue),
        RepoPages(pages, store),
        SignIn(pages, root),
    )
    routes = [route for family in families for route in family.routes()]
    return Starlette(routes=routes, middleware=[_session_middleware(settings)])


def _session_middleware(settings: Settings) -> Middleware:
    cookie_secure = bool(settings.public_url and settings.public_url.startswith("https://"))
    return Middleware(
        SessionMiddleware,
        secret_key=session.session_key(settings.data_dir),
        session_cookie="shipmate_dashboard",
        same_site="lax",
        https_only=cookie_secure,
        max_age=12 * 3600,
    )
