"""Signing in and out: with GitHub (the App's OAuth client), which shows a viewer the
repositories they can write to, or with SHIPMATE_ADMIN_TOKEN, which shows everything."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.config import Settings
from bot.github.oauth import SignInFailed, authorize_url, sign_in
from bot.intake.dashboard import session
from bot.intake.dashboard.pages import PageFamily
from bot.intake.dashboard.session import Viewer

ADMIN = "admin"


def _safe_next(target: str | None, root: str) -> str:
    """Only a path of this dashboard: never another site (open redirect)."""
    if target and target.startswith(root + "/") and not target.startswith("//"):
        return target
    return root + "/"


def _admin_token(settings: Settings) -> str | None:
    token = settings.admin_token
    return token.get_secret_value() if token is not None and token.get_secret_value() else None


@dataclass
class SignIn(PageFamily):
    root: str

    def routes(self) -> list[Route]:
        return [
            Route("/login", self.login, methods=["GET", "POST"], name="login"),
            Route("/logout", self.logout, methods=["POST"], name="logout"),
            Route("/auth/github", self.github_start, name="github_start"),
            Route("/auth/github/callback", self.github_callback, name="github_callback"),
        ]

    @property
    def oauth(self) -> bool:
        settings = self.pages.settings
        return bool(settings.github_client_id and settings.github_client_secret)

    def callback_url(self, request: Request) -> str:
        base = (self.pages.settings.public_url or str(request.base_url)).rstrip("/")
        return f"{base}{self.root}/auth/github/callback"

    async def login(self, request: Request) -> Response:
        token = _admin_token(self.pages.settings)
        error = None
        if request.method == "POST":
            form = await request.form()
            if not await session.form_is_ours(request):
                error = "The form expired: try again."
            elif session.token_matches(str(form.get("token") or ""), token):
                session.sign_in(request, Viewer(ADMIN, True, ()))
                return RedirectResponse(_safe_next(str(form.get("next") or ""), self.root), 303)
            else:
                error = "That is not the admin token."
        return self.pages.render(
            request,
            "login.html",
            title="Sign in",
            viewer=None,
            error=error,
            token_form=token is not None,
            github=str(request.url_for("github_start").path) if self.oauth else None,
            next=_safe_next(request.query_params.get("next"), self.root),
        )

    async def github_start(self, request: Request) -> Response:
        if not self.oauth:
            return HTMLResponse("Signing in with GitHub needs the App's OAuth client.", 404)
        state = secrets.token_urlsafe(24)
        request.session["oauth_state"] = state
        client_id = str(self.pages.settings.github_client_id)
        url = authorize_url(self.pages.web_url, client_id, state, self.callback_url(request))
        return RedirectResponse(url, 303)

    async def github_callback(self, request: Request) -> Response:
        settings = self.pages.settings
        expected = request.session.pop("oauth_state", None)
        state, code = request.query_params.get("state"), request.query_params.get("code")
        if (
            not self.oauth
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
                self.callback_url(request),
            )
        except SignInFailed as exc:
            return HTMLResponse(f"{exc}. Start again.", 502)
        session.sign_in(request, Viewer(user.login, False, user.repos))
        return RedirectResponse(self.root + "/", 303)

    async def logout(self, request: Request) -> Response:
        if await session.form_is_ours(request):
            request.session.clear()
        return RedirectResponse(str(request.url_for("login").path), 303)
