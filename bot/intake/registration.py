"""Registering the App from `/`: the manifest forms (a personal account, or an organization by
way of `/setup/organization`), GitHub's callback that saves the credentials, and afterwards a
link to the App's install page. The pages themselves are bot/intake/setup.py's."""

from __future__ import annotations

import structlog
from githubkit.exception import RequestFailed
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.config import Settings
from bot.github.manifest import (
    CODE,
    ManifestStates,
    build_manifest,
    convert_code,
    github_web_url,
    is_registered,
    load_credentials,
    save_credentials,
)
from bot.intake import setup

log = structlog.get_logger("shipmate.web")


EXPIRED = "<p>Unknown or expired registration; start again at /.</p>"


class Registration:
    """The pages of one server: the manifest states it handed out, and where GitHub is."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.states = ManifestStates()
        self.web_url = github_web_url(settings.github_api_url)

    def install_url(self) -> str | None:
        saved = load_credentials(self.settings.data_dir) or {}
        slug = self.settings.app_slug or saved.get("app_slug")
        return setup.install_url(self.web_url, slug, saved.get("html_url"))

    async def index(self, request: Request) -> Response:
        settings = self.settings
        if is_registered(settings):
            return HTMLResponse(setup.registered_page(self.install_url()))
        base = (settings.public_url or str(request.base_url)).rstrip("/")
        page = setup.registration_page(
            build_manifest(base),
            self.web_url,
            self.states.issue(),
            base_url=str(request.base_url).rstrip("/"),
            public_url=settings.public_url,
        )
        return HTMLResponse(page)

    async def organization(self, request: Request) -> Response:
        """The organization's form, sent on to GitHub: a 307 keeps the POST and its manifest."""
        form = await request.form()
        org, state = str(form.get("organization") or ""), str(form.get("state") or "")
        if is_registered(self.settings) or not setup.ACCOUNT.fullmatch(org):
            return HTMLResponse("<p>That is not an organization's name; go back to /.</p>", 400)
        if not CODE.fullmatch(state):
            return HTMLResponse(EXPIRED, 400)
        return RedirectResponse(
            f"{self.web_url}/organizations/{org}/settings/apps/new?state={state}", 307
        )

    async def callback(self, request: Request) -> Response:
        code = request.query_params.get("code")
        if is_registered(self.settings):
            return HTMLResponse(
                "<p>A GitHub App is already registered for this server; nothing was changed.</p>",
                409,
            )
        if not code or not CODE.fullmatch(code):
            return HTMLResponse("<p>GitHub did not send a code.</p>", status_code=400)
        if not self.states.consume(request.query_params.get("state")):
            return HTMLResponse(EXPIRED, 400)
        try:
            answer = await convert_code(self.settings.github_api_url, code)
        except RequestFailed as exc:
            status = exc.response.status_code
            return HTMLResponse(
                f"<p>GitHub refused the code ({status}); start again at /.</p>", 502
            )
        path = save_credentials(self.settings.data_dir, answer)
        log.info("app.registered", path=str(path))
        page = setup.registered_now_page(answer.get("slug"), self.install_url())
        return HTMLResponse(page)


def registration_routes(settings: Settings) -> list[Route]:
    pages = Registration(settings)
    return [
        Route("/", pages.index),
        Route("/setup/callback", pages.callback),
        Route("/setup/organization", pages.organization, methods=["POST"]),
    ]
