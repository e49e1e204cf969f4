"""The operator's dashboard, served by `shipmate serve` under /dashboard: runs, one run (plan,
transcript, diff, tests, egress, GitHub actions, cost), deliveries (redeliver), the queue (retry
or drop a dead job), repositories and costs. Server-rendered (Jinja2), no build step."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.config import Settings
from bot.db.views import DashboardViews
from bot.github.manifest import github_web_url
from bot.github.oauth import SignInFailed, authorize_url, sign_in
from bot.intake.dashboard import session
from bot.intake.dashboard.pages import Pages
from bot.intake.dashboard.session import Viewer, signed_in

ADMIN = "admin"


def _safe_next(target: str | None, root: str) -> str:
    """Only a path of this dashboard: never another site (open redirect)."""
    if target and target.startswith(root + "/") and not target.startswith("//"):
        return target
    return root + "/"


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
        store,
        queue,
        github_web_url(settings.github_api_url),
        settings.known_secrets,
        redeliver,
    )
    oauth = settings.github_client_id and settings.github_client_secret

    def callback_url(request: Request) -> str:
        base = (settings.public_url or str(request.base_url)).rstrip("/")
        return f"{base}{root}/auth/github/callback"

    async def login(request: Request) -> Response:
        error = None
        if request.method == "POST":
            form = await request.form()
            if not await session.form_is_ours(request):
                error = "The form expired: try again."
            elif session.token_matches(str(form.get("token") or ""), _admin_token(settings)):
                session.sign_in(request, Viewer(ADMIN, True, ()))
                return RedirectResponse(_safe_next(str(form.get("next") or ""), root), 303)
            else:
                error = "That is not the admin token."
        return pages.render(
            request,
            "login.html",
            title="Sign in",
            viewer=None,
            error=error,
            token_form=_admin_token(settings) is not None,
            github=str(request.url_for("github_start").path) if oauth else None,
            next=_safe_next(request.query_params.get("next"), root),
        )

    async def github_start(request: Request) -> Response:
        if not oauth:
            return HTMLResponse("Signing in with GitHub needs the App's OAuth client.", 404)
        state = secrets.token_urlsafe(24)
        request.session["oauth_state"] = state
        url = authorize_url(
            pages.web_url, str(settings.github_client_id), state, callback_url(request)
        )
        return RedirectResponse(url, 303)

    async def github_callback(request: Request) -> Response:
        expected = request.session.pop("oauth_state", None)
        state, code = request.query_params.get("state"), request.query_params.get("code")
        if (
            not oauth
            or not code
            or not expected
            or not session.token_matches(state or "", expected)
        ):
            return HTMLResponse("Unknown or expired sign-in: start again.", 400)
        assert settings.github_client_secret is not None
        try:
            user = await sign_in(
                settings.github_api_url,
                settings.app_id,
                str(settings.github_client_id),
                settings.github_client_secret.get_secret_value(),
                code,
                callback_url(request),
            )
        except SignInFailed as exc:
            return HTMLResponse(f"{exc}. Start again.", 502)
        session.sign_in(request, Viewer(user.login, False, user.repos))
        return RedirectResponse(root + "/", 303)

    async def logout(request: Request) -> Response:
        if await session.form_is_ours(request):
            request.session.clear()
        return RedirectResponse(str(request.url_for("login").path), 303)

    async def retry_job(request: Request, viewer: Viewer) -> Response:
        return await pages.job_action(request, viewer, "retry")

    async def drop_job(request: Request, viewer: Viewer) -> Response:
        return await pages.job_action(request, viewer, "drop")

    routes = [
        Route("/", signed_in(pages.runs), name="runs"),
        Route("/runs/{run_id:str}", signed_in(pages.run), name="run"),
        Route("/deliveries", signed_in(pages.deliveries), name="deliveries"),
        Route(
            "/deliveries/{delivery_id:str}/redeliver",
            signed_in(pages.redeliver_one),
            methods=["POST"],
            name="redeliver",
        ),
        Route("/queue", signed_in(pages.jobs), name="queue"),
        Route(
            "/queue/{job_id:int}/retry", signed_in(retry_job), methods=["POST"], name="retry_job"
        ),
        Route("/queue/{job_id:int}/drop", signed_in(drop_job), methods=["POST"], name="drop_job"),
        Route("/repos", signed_in(pages.repos), name="repos"),
        Route("/costs", signed_in(pages.costs), name="costs"),
        Route("/login", login, methods=["GET", "POST"], name="login"),
        Route("/logout", logout, methods=["POST"], name="logout"),
        Route("/auth/github", github_start, name="github_start"),
        Route("/auth/github/callback", github_callback, name="github_callback"),
    ]
    cookie_secure = bool(settings.public_url and settings.public_url.startswith("https://"))
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=session.session_key(settings.data_dir),
            session_cookie="shipmate_dashboard",
            same_site="lax",
            https_only=cookie_secure,
            max_age=12 * 3600,
        )
    ]
    return Starlette(routes=routes, middleware=middleware)


def _admin_token(settings: Settings) -> str | None:
    token = settings.admin_token
    return token.get_secret_value() if token is not None and token.get_secret_value() else None
