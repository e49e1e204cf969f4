"""Who is looking at the dashboard, and that a form came from the dashboard itself.

A viewer signs in with GitHub (the App's OAuth client) and then sees only the repositories of
this App they can write to; or with SHIPMATE_ADMIN_TOKEN (headless or local installs), which
sees everything. The session is a signed cookie (starlette's SessionMiddleware, its key kept in
the data dir); every form carries the session's CSRF token."""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

KEY_FILE = "dashboard-session.key"
Page = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Viewer:
    login: str
    admin: bool
    repos: tuple[str, ...]

    @property
    def visible(self) -> tuple[str, ...] | None:
        """The repositories this viewer may see; None: all of them."""
        return None if self.admin else self.repos

    def may_see(self, repo: str | None) -> bool:
        return self.admin or (repo is not None and repo in self.repos)


def session_key(data_dir: Path) -> str:
    """The cookie-signing key: made once, readable by Shipmate's user only. Written aside and
    linked into place, so processes starting together on one data dir (web replicas sharing
    a volume) all take the first one made, and none reads it half-written."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEY_FILE
    if not path.exists():
        fd, aside = tempfile.mkstemp(dir=data_dir, prefix=f".{KEY_FILE}.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
        finally:
            os.unlink(aside)
    return path.read_text().strip()


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


async def form_is_ours(request: Request) -> bool:
    """The form carries this session's CSRF token."""
    form = await request.form()
    sent = form.get("csrf")
    expected = request.session.get("csrf")
    return (
        isinstance(sent, str)
        and isinstance(expected, str)
        and hmac.compare_digest(sent.encode(), expected.encode())
    )


def viewer_of(request: Request) -> Viewer | None:
    data = request.session.get("viewer")
    if not isinstance(data, dict) or not isinstance(data.get("login"), str):
        return None
    repos = data.get("repos") or []
    return Viewer(str(data["login"]), bool(data.get("admin")), tuple(str(r) for r in repos))


def sign_in(request: Request, viewer: Viewer) -> None:
    csrf = request.session.get("csrf")
    request.session.clear()  # a new session for a new viewer (no fixation)
    request.session["viewer"] = {
        "login": viewer.login,
        "admin": viewer.admin,
        "repos": list(viewer.repos),
    }
    if csrf:
        request.session["csrf"] = secrets.token_urlsafe(24)


def token_matches(given: str, expected: str | None) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), str(expected).encode())


def signed_in(page: Callable[[Request, Viewer], Awaitable[Response]]) -> Page:
    """The page for a signed-in viewer; anyone else goes to the sign-in page first."""

    async def guarded(request: Request) -> Response:
        viewer = viewer_of(request)
        if viewer is None:
            here = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
            return RedirectResponse(f"{request.scope.get('root_path', '')}/login?next={here}", 303)
        return await page(request, viewer)

    return guarded
