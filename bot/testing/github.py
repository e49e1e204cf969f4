"""A stand-in for GitHub on a real socket: a REST subset with GitHub's shapes, status codes and
headers, App JWT and installation-token auth with repository and permission scoping, git smart
HTTP through the real `git http-backend`, failure injection, and a webhook emitter built from
the recorded payloads. Tests set state up, run the app against `SHIPMATE_GITHUB_API_URL`, and
assert on what was recorded.

    with GitHubStandIn(tmp_path) as gh:
        app = gh.create_app()
        gh.create_repo("octo/widgets", {"README.md": "hi"})
        installation = gh.install(app, "octo", ["octo/widgets"], {"contents": "write"})
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import itertools
import json
import os
import re
import secrets
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.testing.server import ServerThread

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "github-webhooks"
DOCS = "https://docs.github.com/rest"
LEVELS = {"none": 0, "read": 1, "write": 2, "admin": 3}
PRE_RECEIVE = """#!/bin/sh
# Installed by the GitHub stand-in: refuse workflow changes without the workflows permission.
[ "$STANDIN_WORKFLOWS" = "write" ] && exit 0
zero=0000000000000000000000000000000000000000
while read old new ref; do
  [ "$new" = "$zero" ] && continue
  if [ "$old" = "$zero" ]; then range="$new --not --all"; else range="$old..$new"; fi
  if git log --format= --name-only $range | grep -q '^\\.github/workflows/'; then
    file=$(git log --format= --name-only $range | grep '^\\.github/workflows/' | head -1)
    echo "refusing to allow a GitHub App to create or update workflow \\`$file\\` without \\`workflows\\` permission"
    exit 1
  fi
done
exit 0
"""


@dataclass
class App:
    id: int
    slug: str
    private_key_pem: str
    public_key: Any
    webhook_secret: str


@dataclass
class Installation:
    id: int
    app: App
    account: str
    repositories: list[str]
    permissions: dict[str, str]


@dataclass
class Token:
    value: str
    installation: Installation
    repositories: list[str]
    permissions: dict[str, str]
    expires_at: float


@dataclass
class Repo:
    full_name: str
    id: int
    path: Path
    default_branch: str
    private: bool = True


@dataclass
class Fault:
    pattern: re.Pattern[str]
    kind: str
    times: int
    seconds: float = 0.0


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
    statuses: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[int, dict[str, Any]] = field(default_factory=dict)
    collaborators: dict[tuple[str, str], str] = field(default_factory=dict)
    pushes: list[dict[str, Any]] = field(default_factory=list)


def _now_iso(offset: float = 0) -> str:
    return datetime.fromtimestamp(time.time() + offset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            **(env or {}),
        },
    )
    return result.stdout


_IDS = itertools.count(1001)


class NotFound(Exception):
    pass


class GitHubStandIn:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = State()
        self.apps: dict[int, App] = {}
        self.installations: dict[int, Installation] = {}
        self.tokens: dict[str, Token] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.token_lifetime = 3600.0
        # Ids are unique across stand-ins in one process, as on GitHub (githubkit caches App
        # JWTs per App id, so two stand-ins reusing an id would see each other's tokens).
        self._ids = _IDS
        self._log_urls: dict[str, tuple[str, float]] = {}
        self._server = ServerThread(self._app())

    # Set-up -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> GitHubStandIn:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def next_id(self) -> int:
        return next(self._ids)

    def create_app(self, slug: str = "shipmate") -> App:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        app = App(self.next_id(), slug, pem, key.public_key(), secrets.token_hex(16))
        self.apps[app.id] = app
        return app

    def create_repo(
        self, full_name: str, files: Mapping[str, str], default_branch: str = "main"
    ) -> Repo:
        path = self.root / "git" / f"{full_name}.git"
        path.parent.mkdir(parents=True, exist_ok=True)
        _git("init", "-q", "--bare", "-b", default_branch, str(path))
        _git("config", "http.receivepack", "true", cwd=path)
        hook = path / "hooks" / "pre-receive"
        hook.write_text(PRE_RECEIVE)
        hook.chmod(0o755)
        work = self.root / "seed" / full_name
        _git("init", "-q", "-b", default_branch, str(work))
        _commit_files(work, files, "Initial commit")
        _git("push", "-q", str(path), f"HEAD:refs/heads/{default_branch}", cwd=work)
        repo = Repo(full_name, self.next_id(), path, default_branch)
        self.state.repos[full_name] = repo
        return repo

    def install(
        self, app: App, account: str, repositories: Sequence[str], permissions: Mapping[str, str]
    ) -> Installation:
        installation = Installation(
            self.next_id(), app, account, list(repositories), dict(permissions)
        )
        self.installations[installation.id] = installation
        return installation

    def add_collaborator(self, repo: str, login: str, permission: str) -> None:
        self.state.collaborators[(repo, login)] = permission

    def create_issue(
        self,
        repo: str,
        title: str,
        body: str = "",
        user: str = "octocat",
        labels: Sequence[str] = (),
    ) -> dict[str, Any]:
        number = (
            len([k for k in self.state.issues if k[0] == repo])
            + len([k for k in self.state.pulls if k[0] == repo])
            + 1
        )
        issue = {
            "id": self.next_id(),
            "number": number,
            "title": title,
            "body": body,
            "state": "open",
            "user": self._user(user),
            "labels": [{"name": n} for n in labels],
            "html_url": f"{self.url}/{repo}/issues/{number}",
        }
        self.state.issues[(repo, number)] = issue
        return issue

    def create_comment(
        self, repo: str, number: int, body: str, user: str = "octocat"
    ) -> dict[str, Any]:
        """A comment a person wrote (what a webhook's `comment` then refers to)."""
        comment_id = self.next_id()
        comment: dict[str, Any] = {
            "id": comment_id,
            "repo": repo,
            "issue": number,
            "body": body,
            "user": self._user(user),
            "created_at": _now_iso(),
            "updated_at": _now_iso(),
            "html_url": f"{self.url}/{repo}/issues/{number}#comment",
        }
        self.state.comments[comment_id] = comment
        return comment

    def comments_on(self, repo: str, number: int) -> list[dict[str, Any]]:
        return [
            c for c in self.state.comments.values() if c["repo"] == repo and c["issue"] == number
        ]

    def commit(
        self,
        repo: str,
        branch: str,
        files: Mapping[str, str],
        message: str = "change",
        start: str | None = None,
    ) -> str:
        """Commit `files` on `branch` (made from `start`, default: the default branch) as a
        person pushing would; returns the new head."""
        info = self.state.repos[repo]
        work = self.root / "work" / f"{repo.replace('/', '-')}-{self.next_id()}"
        _git("clone", "-q", str(info.path), str(work))
        source = branch if self.branch_sha(repo, branch) else (start or info.default_branch)
        _git("checkout", "-q", "-B", branch, f"origin/{source}", cwd=work)
        _commit_files(work, files, message)
        _git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
        return _git("rev-parse", "HEAD", cwd=work).strip()

    def create_pull(
        self, repo: str, head: str, title: str, user: str, base: str | None = None
    ) -> dict[str, Any]:
        info = self.state.repos[repo]
        number = (
            len([k for k in self.state.issues if k[0] == repo])
            + len([k for k in self.state.pulls if k[0] == repo])
            + 1
        )
        pull = {
            "id": self.next_id(),
            "number": number,
            "title": title,
            "body": "",
            "state": "open",
            "draft": False,
            "user": self._user(user),
            "labels": [],
            "head": {
                "ref": head,
                "sha": self.branch_sha(repo, head),
                "repo": self._repo_json(info),
            },
            "base": {"ref": base or info.default_branch, "repo": self._repo_json(info)},
            "html_url": f"{self.url}/{repo}/pull/{number}",
        }
        self.state.pulls[(repo, number)] = pull
        return pull

    def create_fork_pull(
        self, repo: str, fork: str, branch: str, files: Mapping[str, str], title: str, user: str
    ) -> dict[str, Any]:
        """A pull request from `fork` (a copy of `repo`); its head is also kept in the base
        repository as refs/pull/N/head, as GitHub does."""
        base = self.state.repos[repo]
        fork_path = self.root / "git" / f"{fork}.git"
        fork_path.parent.mkdir(parents=True, exist_ok=True)
        _git("clone", "-q", "--bare", str(base.path), str(fork_path))
        self.state.repos[fork] = Repo(fork, self.next_id(), fork_path, base.default_branch)
        head_sha = self.commit(fork, branch, files, title)
        pull = self.create_pull(repo, branch, title, user)
        pull["head"] = {
            "ref": branch,
            "sha": head_sha,
            "repo": self._repo_json(self.state.repos[fork]),
        }
        _git(
            "fetch",
            "-q",
            str(fork_path),
            f"refs/heads/{branch}:refs/pull/{pull['number']}/head",
            cwd=base.path,
        )
        return pull

    def add_review(
        self,
        repo: str,
        number: int,
        user: str,
        state: str,
        body: str,
        comments: Sequence[tuple[str, int, str]],
    ) -> dict[str, Any]:
        review = {"id": self.next_id(), "user": self._user(user), "state": state, "body": body}
        self.state.reviews.setdefault((repo, number), []).append(review)
        for path, line, text in comments:
            comment_id = self.next_id()
            self.state.review_comments[comment_id] = {
                "id": comment_id,
                "pull_request_review_id": review["id"],
                "pull_number": number,
                "path": path,
                "line": line,
                "body": text,
                "user": self._user(user),
            }
        return review

    def branch_sha(self, repo: str, branch: str) -> str | None:
        try:
            return _git(
                "rev-parse", f"refs/heads/{branch}", cwd=self.state.repos[repo].path
            ).strip()
        except subprocess.CalledProcessError:
            return None

    def add_job_log(self, repo: str, text: str, name: str = "test") -> int:
        job_id = self.next_id()
        self.state.jobs[job_id] = {
            "id": job_id,
            "repo": repo,
            "name": name,
            "log": text,
            "conclusion": "failure",
        }
        return job_id

    def fail(self, route: str, kind: str, times: int = 1, seconds: float = 0.0) -> None:
        """Inject a failure into requests whose "METHOD /path" matches `route` ({x} = one segment)."""
        pattern = re.escape(route).replace(r"\{", "{").replace(r"\}", "}")
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", pattern)
        self.faults.append(Fault(re.compile(f"^{pattern}$"), kind, times, seconds))

    # Webhooks -------------------------------------------------------------------------------

    def delivery(
        self,
        event: str,
        action: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        *,
        secret: str,
        fixture: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        folder = FIXTURES / event
        name = fixture or next(
            p.name
            for p in sorted(folder.iterdir())
            if action is None or p.name.startswith(f"{action}.")
        )
        payload = json.loads((folder / name).read_text())
        _merge(payload, overrides or {})
        body = json.dumps(payload).encode()
        installation = payload.get("installation") or {}
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/standin",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "1",
            "X-GitHub-Hook-Installation-Target-ID": str(installation.get("id", "")),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-Hub-Signature-256": "sha256="
            + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        }
        return headers, body

    def emit(
        self,
        event: str,
        action: str | None,
        overrides: Mapping[str, Any] | None,
        *,
        to: str,
        secret: str,
        fixture: str | None = None,
    ) -> httpx.Response:
        headers, body = self.delivery(event, action, overrides, secret=secret, fixture=fixture)
        return httpx.post(to, content=body, headers=headers, timeout=30)

    # HTTP ------------------------------------------------------------------------------------

    def _app(self) -> Starlette:
        routes = [
            Route("/_logs/{key}", self._serve_log),
            Route("/{owner}/{repo}.git/{rest:path}", self._git_http, methods=["GET", "POST"]),
            Route("/{path:path}", self._rest, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
        ]
        return Starlette(routes=routes)

    def _user(self, login: str) -> dict[str, Any]:
        return {
            "login": login,
            "id": abs(hash(login)) % 10**7,
            "type": "Bot" if login.endswith("[bot]") else "User",
        }

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
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        return self._json(
            {"message": message, "documentation_url": DOCS, "status": str(status)}, status, headers
        )

    async def _fault(self, key: str) -> Response | None:
        for fault in self.faults:
            if fault.times > 0 and fault.pattern.match(key):
                fault.times -= 1
                if fault.kind == "slow":
                    await asyncio.sleep(fault.seconds or 1.0)
                    return None
                if fault.kind == "rate_limit":
                    reset = time.time() + (fault.seconds or 1)
                    return JSONResponse(
                        {
                            "message": "API rate limit exceeded for installation.",
                            "documentation_url": DOCS,
                        },
                        403,
                        headers={**self._headers(0, reset)},
                    )
                if fault.kind == "secondary_limit":
                    return self._error(
                        403,
                        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                        {"retry-after": f"{fault.seconds or 1:g}"},
                    )
                if fault.kind == "server_error":
                    return self._error(502, "Server Error")
                if fault.kind == "expired_token":
                    return self._error(401, "Bad credentials")
        return None

    def _token(self, request: Request) -> Token | None:
        auth = request.headers.get("authorization", "")
        value = auth.split(" ", 1)[1] if " " in auth else ""
        if auth.lower().startswith("basic "):
            value = base64.b64decode(value).decode().split(":", 1)[-1]
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
            claims = jwt.decode(raw, app.public_key, algorithms=["RS256"], leeway=60)
        except (jwt.PyJWTError, KeyError, ValueError):
            return self._error(401, "A JSON web token could not be decoded")
        if claims["exp"] - claims["iat"] > 600 or claims["exp"] > time.time() + 660:
            return self._error(401, "'Expiration time' claim ('exp') is too far in the future")
        if claims["iat"] > time.time() + 60:
            return self._error(
                401, "'Issued at' claim ('iat') must be an Integer representing a time in the past"
            )
        return app

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

    async def _rest(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._error(400, "Problems parsing JSON")
        record = Recorded(request.method, path, request.url.query, dict(request.headers), body)
        self.requests.append(record)
        key = f"{request.method} {path}"
        response = await self._fault(key)
        if response is None:
            try:
                response = await self._route(request, path, body or {})
            except NotFound:
                response = self._error(404, "Not Found")
        record.status = response.status_code
        return response

    async def _route(self, request: Request, path: str, body: dict[str, Any]) -> Response:
        method = request.method
        parts = path.strip("/").split("/")
        if path == "/app" and method == "GET":
            app = self._app_from_jwt(request)
            if isinstance(app, JSONResponse):
                return app
            return self._json(
                {
                    "id": app.id,
                    "slug": app.slug,
                    "name": app.slug,
                    "owner": self._user("octo"),
                    "permissions": {},
                    "events": [],
                }
            )
        match = re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)
        if match and method == "POST":
            return self._issue_token(request, int(match.group(1)), body)
        if len(parts) < 3 or parts[0] != "repos":
            raise NotFound
        repo = f"{parts[1]}/{parts[2]}"
        rest = parts[3:]
        token = self._token(request)
        if rest == ["installation"]:
            app = self._app_from_jwt(request)
            if isinstance(app, JSONResponse):
                return app
            found = next((i for i in self.installations.values() if repo in i.repositories), None)
            if found is None:
                raise NotFound
            return self._json(
                {"id": found.id, "account": self._user(found.account), "app_id": found.app.id}
            )
        denied = self._allowed(token, repo, "metadata", "read")
        if denied:
            return denied
        state, info = self.state, self.state.repos[repo]
        if not rest:
            return self._json(self._repo_json(info))
        if rest[0] == "branches" and len(rest) >= 2:
            sha = self.branch_sha(repo, "/".join(rest[1:]))
            if sha is None:
                raise NotFound
            return self._json(
                {
                    "name": rest[1],
                    "commit": {"sha": sha, "url": ""},
                    "protected": rest[1] == info.default_branch,
                }
            )
        if rest[:3] == ["git", "ref", "heads"]:
            sha = self.branch_sha(repo, "/".join(rest[3:]))
            if sha is None:
                raise NotFound
            return self._json(
                {
                    "ref": "refs/heads/" + "/".join(rest[3:]),
                    "object": {"sha": sha, "type": "commit"},
                }
            )
        if rest[0] == "contents":
            denied = self._allowed(token, repo, "contents", "read")
            if denied:
                return denied
            file_path = "/".join(rest[1:])
            ref = request.query_params.get("ref", info.default_branch)
            try:
                data = subprocess.run(
                    ["git", "show", f"{ref}:{file_path}"],
                    cwd=info.path,
                    capture_output=True,
                    check=True,
                ).stdout
            except subprocess.CalledProcessError:
                raise NotFound from None
            return self._json(
                {
                    "type": "file",
                    "encoding": "base64",
                    "path": file_path,
                    "name": file_path.rsplit("/", 1)[-1],
                    "size": len(data),
                    "sha": hashlib.sha1(data).hexdigest(),
                    "content": base64.b64encode(data).decode(),
                }
            )
        if rest[0] == "collaborators" and len(rest) == 3 and rest[2] == "permission":
            permission = state.collaborators.get((repo, rest[1]), "none")
            role = permission
            legacy = {"maintain": "write", "triage": "read"}.get(permission, permission)
            return self._json(
                {"permission": legacy, "role_name": role, "user": self._user(rest[1])}
            )
        if rest[0] == "issues":
            return self._issues(request, repo, rest[1:], body, token)
        if rest[0] == "pulls":
            return self._pulls(request, repo, rest[1:], body, token)
        if rest[0] in ("check-runs", "statuses", "commits"):
            return self._checks(request, repo, rest, body, token)
        if rest[:2] == ["actions", "jobs"] and len(rest) == 4 and rest[3] == "logs":
            denied = self._allowed(token, repo, "actions", "read")
            if denied:
                return denied
            job = state.jobs.get(int(rest[2]))
            if job is None:
                raise NotFound
            key = secrets.token_urlsafe(12)
            self._log_urls[key] = (job["log"], time.time() + 60)
            return RedirectResponse(f"{self.url}/_logs/{key}", 302)
        if rest[0] == "deployments":
            deployment = state.deployments.get(int(rest[1])) if len(rest) > 1 else None
            if deployment is None:
                raise NotFound
            return self._json(deployment if len(rest) == 2 else deployment.get("statuses", []))
        raise NotFound

    def _repo_json(self, info: Repo) -> dict[str, Any]:
        owner = info.full_name.split("/")[0]
        return {
            "id": info.id,
            "name": info.full_name.split("/")[1],
            "full_name": info.full_name,
            "private": info.private,
            "owner": self._user(owner),
            "default_branch": info.default_branch,
            "clone_url": f"{self.url}/{info.full_name}.git",
            "html_url": f"{self.url}/{info.full_name}",
        }

    def _issue_token(
        self, request: Request, installation_id: int, body: dict[str, Any]
    ) -> Response:
        app = self._app_from_jwt(request)
        if isinstance(app, JSONResponse):
            return app
        installation = self.installations.get(installation_id)
        if installation is None or installation.app.id != app.id:
            raise NotFound
        owner = installation.account
        repos = installation.repositories
        if body.get("repositories"):
            wanted = [f"{owner}/{name}" for name in body["repositories"]]
            if any(r not in installation.repositories for r in wanted):
                return self._error(
                    422,
                    "There is at least one repository that does not exist or is not accessible to the parent installation.",
                )
            repos = wanted
        permissions = dict(installation.permissions)
        if body.get("permissions"):
            for name, level in body["permissions"].items():
                if LEVELS.get(installation.permissions.get(name, "none"), 0) < LEVELS.get(level, 9):
                    return self._error(
                        422,
                        f"The permissions requested are not granted to this installation: {name}:{level}",
                    )
            permissions = dict(body["permissions"])
        permissions.setdefault("metadata", "read")
        value = "ghs_" + secrets.token_urlsafe(27).replace("-", "a").replace("_", "b")[:36]
        token = Token(value, installation, repos, permissions, time.time() + self.token_lifetime)
        self.tokens[value] = token
        return self._json(
            {
                "token": value,
                "expires_at": _now_iso(self.token_lifetime),
                "permissions": permissions,
                "repository_selection": "selected",
                "repositories": [
                    self._repo_json(self.state.repos[r]) for r in repos if r in self.state.repos
                ],
            },
            201,
        )

    def _issues(
        self,
        request: Request,
        repo: str,
        rest: list[str],
        body: dict[str, Any],
        token: Token | None,
    ) -> Response:
        state, method = self.state, request.method
        if rest and rest[0] == "comments":
            comment = state.comments.get(int(rest[1])) if len(rest) > 1 else None
            if comment is None or comment["repo"] != repo:
                raise NotFound
            if len(rest) == 3 and rest[2] == "reactions" and method == "POST":
                denied = self._allowed(token, repo, "issues", "write")
                if denied:
                    return denied
                reaction = {
                    "id": self.next_id(),
                    "content": body.get("content"),
                    "comment_id": comment["id"],
                    "user": self._user(self._bot(token)),
                }
                state.reactions.append(reaction)
                return self._json(reaction, 201)
            if method == "PATCH":
                denied = self._allowed(token, repo, "issues", "write")
                if denied:
                    return denied
                comment["body"] = body.get("body", comment["body"])
                comment["updated_at"] = _now_iso()
            return self._json(self._public(comment))
        number = int(rest[0]) if rest else 0
        if (repo, number) not in state.issues and (repo, number) not in state.pulls:
            raise NotFound
        if len(rest) == 1:
            return self._json(state.issues.get((repo, number)) or state.pulls[(repo, number)])
        if rest[1] == "comments":
            if method == "POST":
                denied = self._allowed(token, repo, "issues", "write")
                if denied:
                    return denied
                comment = {
                    "id": self.next_id(),
                    "repo": repo,
                    "issue": number,
                    "body": body.get("body", ""),
                    "user": self._user(self._bot(token)),
                    "created_at": _now_iso(),
                    "updated_at": _now_iso(),
                    "html_url": f"{self.url}/{repo}/issues/{number}#comment",
                }
                state.comments[comment["id"]] = comment
                return self._json(self._public(comment), 201)
            listed = [
                self._public(c)
                for c in state.comments.values()
                if c["repo"] == repo and c["issue"] == number
            ]
            return self._paginate(request, listed)
        if rest[1] == "labels":
            target = state.issues.get((repo, number)) or state.pulls[(repo, number)]
            denied = self._allowed(token, repo, "issues", "write" if method != "GET" else "read")
            if denied:
                return denied
            if method == "POST":
                names = body.get("labels", [])
                target["labels"] += [
                    {"name": n} for n in names if n not in [x["name"] for x in target["labels"]]
                ]
            elif method == "DELETE" and len(rest) == 3:
                target["labels"] = [x for x in target["labels"] if x["name"] != rest[2]]
            return self._json(target["labels"])
        if rest[1] == "reactions" and method == "POST":
            reaction = {
                "id": self.next_id(),
                "content": body.get("content"),
                "issue": number,
                "user": self._user(self._bot(token)),
            }
            state.reactions.append(reaction)
            return self._json(reaction, 201)
        raise NotFound

    @staticmethod
    def _public(comment: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in comment.items() if k not in ("repo", "issue")}

    def _bot(self, token: Token | None) -> str:
        return f"{token.installation.app.slug}[bot]" if token else "ghost"

    def _paginate(self, request: Request, items: list[Any]) -> Response:
        per_page = int(request.query_params.get("per_page", 30))
        page = int(request.query_params.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(items) // per_page))
        links = []
        base = str(request.url.remove_query_params("page"))
        sep = "&" if "?" in base else "?"
        if page < last:
            links += [
                f'<{base}{sep}page={page + 1}>; rel="next"',
                f'<{base}{sep}page={last}>; rel="last"',
            ]
        if page > 1:
            links += [
                f'<{base}{sep}page={page - 1}>; rel="prev"',
                f'<{base}{sep}page=1>; rel="first"',
            ]
        return self._json(chunk, headers={"link": ", ".join(links)} if links else None)

    def _pulls(
        self,
        request: Request,
        repo: str,
        rest: list[str],
        body: dict[str, Any],
        token: Token | None,
    ) -> Response:
        state, method = self.state, request.method
        if not rest:
            if method == "POST":
                denied = self._allowed(token, repo, "pull_requests", "write")
                if denied:
                    return denied
                head_sha = self.branch_sha(repo, body.get("head", "").split(":")[-1])
                if head_sha is None:
                    return self._json(
                        {
                            "message": "Validation Failed",
                            "errors": [
                                {"resource": "PullRequest", "field": "head", "code": "invalid"}
                            ],
                            "documentation_url": DOCS,
                        },
                        422,
                    )
                number = (
                    len([k for k in state.issues if k[0] == repo])
                    + len([k for k in state.pulls if k[0] == repo])
                    + 1
                )
                pull = {
                    "id": self.next_id(),
                    "number": number,
                    "title": body.get("title", ""),
                    "body": body.get("body"),
                    "state": "open",
                    "draft": bool(body.get("draft")),
                    "user": self._user(self._bot(token)),
                    "head": {
                        "ref": body["head"].split(":")[-1],
                        "sha": head_sha,
                        "repo": self._repo_json(state.repos[repo]),
                    },
                    "base": {
                        "ref": body.get("base", state.repos[repo].default_branch),
                        "repo": self._repo_json(state.repos[repo]),
                    },
                    "labels": [],
                    "html_url": f"{self.url}/{repo}/pull/{number}",
                }
                state.pulls[(repo, number)] = pull
                return self._json(pull, 201)
            pulls = [p for (r, _), p in state.pulls.items() if r == repo]
            head = request.query_params.get("head")
            if head:
                pulls = [p for p in pulls if p["head"]["ref"] == head.split(":")[-1]]
            wanted = request.query_params.get("state", "open")
            if wanted != "all":
                pulls = [p for p in pulls if p["state"] == wanted]
            return self._paginate(request, pulls)
        number = int(rest[0])
        found = state.pulls.get((repo, number))
        if found is None:
            raise NotFound
        pull = found
        if len(rest) == 1:
            if method == "PATCH":
                denied = self._allowed(token, repo, "pull_requests", "write")
                if denied:
                    return denied
                for name in ("title", "body", "state"):
                    if name in body:
                        pull[name] = body[name]
            return self._json(pull)
        if rest[1] == "reviews":
            reviews = state.reviews.get((repo, number), [])
            if len(rest) == 4 and rest[3] == "comments":
                listed = [
                    c
                    for c in state.review_comments.values()
                    if c.get("pull_request_review_id") == int(rest[2])
                ]
                return self._paginate(request, listed)
            return self._paginate(request, reviews)
        if rest[1] == "comments":
            if len(rest) == 4 and rest[3] == "replies" and method == "POST":
                reply_id = self.next_id()
                reply: dict[str, Any] = {
                    "id": reply_id,
                    "body": body.get("body"),
                    "in_reply_to_id": int(rest[2]),
                    "user": self._user(self._bot(token)),
                }
                state.review_comments[reply_id] = reply
                return self._json(reply, 201)
            return self._paginate(
                request,
                [c for c in state.review_comments.values() if c.get("pull_number") == number],
            )
        raise NotFound

    def _checks(
        self,
        request: Request,
        repo: str,
        rest: list[str],
        body: dict[str, Any],
        token: Token | None,
    ) -> Response:
        state, method = self.state, request.method
        if rest[0] == "check-runs":
            write = method in ("POST", "PATCH")
            denied = self._allowed(token, repo, "checks", "write" if write else "read")
            if denied:
                return denied
            if method == "POST":
                run = {
                    "id": self.next_id(),
                    "repo": repo,
                    "app": {"slug": self._bot(token).removesuffix("[bot]")},
                    **body,
                }
                state.check_runs[run["id"]] = run
                return self._json(run, 201)
            existing = state.check_runs.get(int(rest[1])) if len(rest) > 1 else None
            if existing is None:
                raise NotFound
            run = existing
            if method == "PATCH":
                run.update(body)
            return self._json(run)
        if rest[0] == "statuses" and method == "POST":
            status = {"id": self.next_id(), "repo": repo, "sha": rest[1], **body}
            state.statuses.append(status)
            return self._json(status, 201)
        if rest[0] == "commits" and len(rest) == 3:
            ref = rest[1]
            if rest[2] == "check-runs":
                runs = [
                    r
                    for r in state.check_runs.values()
                    if r["repo"] == repo and r.get("head_sha") == ref
                ]
                return self._json({"total_count": len(runs), "check_runs": runs})
            if rest[2] == "status":
                statuses = [s for s in state.statuses if s["repo"] == repo and s["sha"] == ref]
                overall = (
                    "failure"
                    if any(s.get("state") in ("failure", "error") for s in statuses)
                    else "success"
                    if statuses
                    else "pending"
                )
                return self._json(
                    {
                        "state": overall,
                        "sha": ref,
                        "statuses": statuses,
                        "total_count": len(statuses),
                    }
                )
        raise NotFound

    async def _serve_log(self, request: Request) -> Response:
        entry = self._log_urls.get(request.path_params["key"])
        if entry is None or entry[1] < time.time():
            return PlainTextResponse("expired", 404)
        return PlainTextResponse(entry[0])

    # Git smart HTTP -------------------------------------------------------------------------------

    async def _git_http(self, request: Request) -> Response:
        repo = f"{request.path_params['owner']}/{request.path_params['repo']}"
        rest = request.path_params["rest"]
        self.requests.append(
            Recorded(
                request.method, request.url.path, request.url.query, dict(request.headers), None
            )
        )
        info = self.state.repos.get(repo)
        if info is None:
            return PlainTextResponse("Repository not found.", 404)
        pushing = (
            rest == "git-receive-pack" or request.query_params.get("service") == "git-receive-pack"
        )
        token = self._token(request)
        if info.private or pushing:
            if token is None:
                return PlainTextResponse(
                    "Invalid username or token.",
                    401,
                    headers={"WWW-Authenticate": 'Basic realm="GitHub"'},
                )
            level = "write" if pushing else "read"
            if (
                repo not in token.repositories
                or LEVELS.get(token.permissions.get("contents", "none"), 0) < LEVELS[level]
            ):
                return PlainTextResponse(
                    f"Permission to {repo}.git denied to {self._bot(token)}.", 403
                )
        before = self._heads(info) if pushing else {}
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root / "git"),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{repo}.git/{rest}",
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": request.url.query,
            "CONTENT_TYPE": request.headers.get("content-type", ""),
            "REMOTE_USER": self._bot(token),
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": os.devnull,
            "STANDIN_WORKFLOWS": (token.permissions.get("workflows", "none") if token else "none"),
        }
        if request.headers.get("content-encoding") == "gzip":
            env["HTTP_CONTENT_ENCODING"] = "gzip"
        body = await request.body()
        process = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate(body)
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name] = value.strip()
        if pushing and rest == "git-receive-pack":
            self._after_push(info, before, token)
        return Response(payload, status, headers=headers)

    def _heads(self, info: Repo) -> dict[str, str]:
        out = _git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", cwd=info.path)
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def _after_push(self, info: Repo, before: dict[str, str], token: Token | None) -> None:
        after = self._heads(info)
        for ref, sha in after.items():
            old = before.get(ref)
            if old == sha:
                continue
            fast_forward = (
                old is None
                or subprocess.run(
                    ["git", "merge-base", "--is-ancestor", old, sha], cwd=info.path, check=False
                ).returncode
                == 0
            )
            self.state.pushes.append(
                {
                    "repo": info.full_name,
                    "ref": ref,
                    "old": old,
                    "new": sha,
                    "fast_forward": fast_forward,
                    "pusher": self._bot(token),
                }
            )
            branch = ref.removeprefix("refs/heads/")
            for (repo, _), pull in self.state.pulls.items():
                if repo == info.full_name and pull["head"]["ref"] == branch:
                    pull["head"]["sha"] = sha


def _commit_files(work: Path, files: Mapping[str, str], message: str) -> None:
    for name, text in files.items():
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    _git("add", "-A", cwd=work)
    _git(
        "-c",
        "user.name=octocat",
        "-c",
        "user.email=o@example.com",
        "commit",
        "-qm",
        message,
        cwd=work,
    )


def _merge(target: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Deep-merge `overrides` into `target` (dicts merge; everything else replaces)."""
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


__all__ = ["App", "GitHubStandIn", "Installation", "Repo", "Token"]
