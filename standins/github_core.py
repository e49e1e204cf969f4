"""The GitHub stand-in's core: what it holds (repositories, Apps, installations, tokens, the
records of issues, pull requests and CI), and what every part of it uses: ids, JSON shapes of
its records, git look-ups, GitHub's answers and errors, and credentials checked as GitHub
checks them."""

from __future__ import annotations

import base64
import itertools
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from standins import github_shapes as shapes
from standins.github_common import DOCS, LEVELS, App, Installation, Repo, Token, git, query_int
from standins.server import ServerThread

ACTIONS_APP_ID = 15368  # GitHub Actions' own App id


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class State:
    repos: dict[str, Repo] = field(default_factory=dict)
    issues: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    reactions: list[dict[str, Any]] = field(default_factory=list)
    pulls: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    review_comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    reviews: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    check_suites: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    workflow_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[int, dict[str, Any]] = field(default_factory=dict)
    deployment_statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    collaborators: dict[tuple[str, str], str] = field(default_factory=dict)
    pushes: list[dict[str, Any]] = field(default_factory=list)
    reruns: list[int] = field(default_factory=list)  # workflow runs whose failed jobs re-ran


_IDS = itertools.count(1001)


class Core:
    """What the stand-in's parts share; `GitHubStandIn` composes them."""

    _server: ServerThread

    def __init__(self, root: Path, first_id: int | None = None) -> None:
        self.root = root
        self.state = State()
        self.apps: dict[int, App] = {}
        self.installations: dict[int, Installation] = {}
        self.tokens: dict[str, Token] = {}
        self.requests: list[Recorded] = []
        self.errors: list[str] = []  # requests the stand-in could not handle
        self.refused: list[str] = []  # requests GitHub's description refuses
        self._used: dict[str, int] = {}
        self.token_lifetime = 3600.0
        # Ids are unique across stand-ins in one process, as on GitHub (githubkit caches App
        # JWTs per App id, so two stand-ins reusing an id would see each other's tokens).
        # A stand-in in another process passes its own `first_id` for the same reason.
        self._ids: Iterator[int] = _IDS if first_id is None else itertools.count(first_id)
        self._log_urls: dict[str, tuple[str, float]] = {}

    @property
    def url(self) -> str:
        return self._server.url

    def next_id(self) -> int:
        return next(self._ids)

    # Shapes of what the stand-in holds ----------------------------------------------------

    def _user(self, login: str) -> dict[str, Any]:
        return shapes.user(self.url, login)

    def _repo_json(self, info: Repo) -> dict[str, Any]:
        return shapes.repository(
            self.url, info.full_name, info.id, info.default_branch, info.private
        )

    def _app_json(self, slug: str) -> dict[str, Any]:
        if slug == "github-actions":
            return shapes.integration(self.url, ACTIONS_APP_ID, slug)
        app = next((a for a in self.apps.values() if a.slug == slug), None)
        return shapes.integration(self.url, app.id if app else shapes.stable_id(slug), slug)

    def _label(self, repo: str, name: str) -> dict[str, Any]:
        return shapes.label(self.url, repo, name)

    def _bot(self, token: Token | None) -> str:
        return f"{token.installation.app.slug}[bot]" if token else "ghost"

    # Git ------------------------------------------------------------------------------------

    def branch_sha(self, repo: str, branch: str) -> str | None:
        try:
            return git("rev-parse", f"refs/heads/{branch}", cwd=self.state.repos[repo].path).strip()
        except subprocess.CalledProcessError:
            return None

    def resolve(self, repo: str, ref: str) -> str | None:
        """The commit a branch, tag or (abbreviated) sha names, or None."""
        if not ref or ref.startswith("-"):
            return None
        try:
            return git(
                "rev-parse",
                "--verify",
                "--quiet",
                f"{ref}^{{commit}}",
                cwd=self.state.repos[repo].path,
            ).strip()
        except subprocess.CalledProcessError:
            return None

    # Answers ------------------------------------------------------------------------------

    def _headers(self, remaining: int = 4999, reset: float | None = None) -> dict[str, str]:
        return {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-used": str(5000 - remaining),
            "x-ratelimit-reset": str(int(reset or time.time() + 3600)),
            "x-ratelimit-resource": "core",
            "x-github-request-id": uuid.uuid4().hex[:16].upper(),
        }

    def _json(
        self, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        return JSONResponse(data, status, headers={**self._headers(), **(headers or {})})

    def _error(
        self,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
        docs: str = DOCS,
    ) -> JSONResponse:
        body = {"message": message, "documentation_url": docs, "status": str(status)}
        return self._json(body, status, headers)

    def _invalid(self, resource: str, field_name: str, code: str) -> Response:
        return self._json(
            {
                "message": "Validation Failed",
                "errors": [{"resource": resource, "field": field_name, "code": code}],
                "documentation_url": DOCS,
                "status": "422",
            },
            422,
        )

    def _paginate(self, request: Request, items: list[Any], key: str | None = None) -> Response:
        """One page of `items` with GitHub's link header; `key` wraps the page as
        {"total_count": n, key: page}, as the Checks and Actions lists are."""
        per_page = min(100, max(1, query_int(request, "per_page", 30)))
        page = max(1, query_int(request, "page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(items) // per_page))
        base = str(request.url.remove_query_params("page"))
        sep = "&" if "?" in base else "?"
        links = []
        if page < last:
            links += [f'<{base}{sep}page={page + 1}>; rel="next"']
            links += [f'<{base}{sep}page={last}>; rel="last"']
        if page > 1:
            links += [f'<{base}{sep}page={page - 1}>; rel="prev"']
            links += [f'<{base}{sep}page=1>; rel="first"']
        data: Any = chunk if key is None else {"total_count": len(items), key: chunk}
        return self._json(data, headers={"link": ", ".join(links)} if links else None)

    # Credentials ----------------------------------------------------------------------------

    def _token(self, request: Request) -> Token | None:
        auth = request.headers.get("authorization", "")
        value = auth.split(" ", 1)[1] if " " in auth else ""
        if auth.lower().startswith("basic "):
            try:
                value = base64.b64decode(value).decode().split(":", 1)[-1]
            except ValueError:
                return None
        token = self.tokens.get(value)
        if token is None or token.expires_at < time.time():
            return None
        return token

    def _app_from_jwt(self, request: Request) -> App | JSONResponse:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return self._error(401, "A JSON web token could not be decoded")
        raw = auth[7:]
        try:
            unverified = jwt.decode(raw, options={"verify_signature": False})
            app = self.apps[int(unverified["iss"])]
            claims = jwt.decode(
                raw,
                app.public_key,
                algorithms=["RS256"],
                options={
                    "require": ["exp", "iat", "iss"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
            problem = _jwt_problem(float(claims["iat"]), float(claims["exp"]), time.time())
        except (jwt.PyJWTError, KeyError, ValueError, TypeError):
            return self._error(401, "A JSON web token could not be decoded")
        return self._error(401, problem) if problem else app

    def _allowed(
        self, token: Token | None, repo: str, permission: str, level: str
    ) -> Response | None:
        if repo not in self.state.repos:
            return self._error(404, "Not Found")
        if token is None:
            return self._error(401, "Bad credentials")
        if repo not in token.repositories:
            return self._error(404, "Not Found")
        if LEVELS.get(token.permissions.get(permission, "none"), 0) < LEVELS[level]:
            return self._error(403, "Resource not accessible by integration")
        return None


def _jwt_problem(iat: float, exp: float, now: float) -> str | None:
    """GitHub's complaint about an App JWT's times (60 s of clock drift allowed), or None."""
    if exp < now - 60:
        return (
            "'Expiration time' claim ('exp') must be a numeric value representing the future "
            "time at which the assertion expires"
        )
    if exp - iat > 600 or exp > now + 660:
        return "'Expiration time' claim ('exp') is too far in the future"
    if iat > now + 60:
        return "'Issued at' claim ('iat') must be an Integer representing a time in the past"
    return None
