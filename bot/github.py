"""GitHub App auth and the REST calls Shipmate makes, through githubkit.

- The App JWT is githubkit's (`AppAuthStrategy`: RS256, `iat` 60 s in the past, `exp` 9 min
  after now).
- Installation tokens are requested through githubkit with the one repository and the
  permissions a step needs, and cached here until 5 minutes before they expire. (githubkit's
  `as_installation` would cache them too, but without a refresh margin we control.)
- One tenacity policy retries every call: 5xx and connection errors with jittered backoff, and
  rate limits for exactly as long as GitHub says (`Retry-After`, `x-ratelimit-reset`). A 4xx that
  will not change (401, 404, 422, a 403 without rate-limit signs) is never retried. githubkit's own
  auto-retry is off so retries are not doubled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import httpx
import structlog
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.exception import RequestError, RequestFailed
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from bot.config import Settings

log = structlog.get_logger("shipmate.github")

T = TypeVar("T")

# The least each step needs. Never `workflows`: Shipmate does not touch CI definitions.
READ: Mapping[str, str] = {
    "metadata": "read",
    "contents": "read",
    "issues": "write",
    "pull_requests": "read",
    "checks": "write",
    "statuses": "read",
    "actions": "read",
    "deployments": "read",
}
PUSH: Mapping[str, str] = {**READ, "contents": "write", "pull_requests": "write"}

REFRESH_MARGIN_SECONDS = 300.0


@dataclass(frozen=True)
class InstallationToken:
    token: str = field(repr=False)
    expires_at: float
    permissions: Mapping[str, str]
    repositories: tuple[str, ...]


class RetryPolicy:
    """When and how long to wait before retrying a GitHub call."""

    def __init__(self, *, attempts: int = 5, max_wait: float = 900.0, base: float = 1.0) -> None:
        self.attempts = attempts
        self.max_wait = max_wait
        self.base = base

    @staticmethod
    def rate_limited(response: httpx.Response) -> bool:
        if response.status_code not in (403, 429):
            return False
        headers = response.headers
        if headers.get("retry-after") or headers.get("x-ratelimit-remaining") == "0":
            return True
        return "secondary rate limit" in response.text.lower()

    def retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, RequestFailed):
            response = exc.response.raw_response
            return response.status_code >= 500 or self.rate_limited(response)
        # Timeouts and connection errors: githubkit's RequestError without a response.
        return isinstance(exc, RequestError | httpx.TransportError)

    def wait_for(self, exc: BaseException | None, attempt: int, now: float | None = None) -> float:
        now = time.time() if now is None else now
        if isinstance(exc, RequestFailed):
            headers = exc.response.raw_response.headers
            if retry_after := headers.get("retry-after"):
                try:
                    return float(min(self.max_wait, max(0.0, float(retry_after))))
                except ValueError:
                    pass
            if headers.get("x-ratelimit-remaining") == "0" and (
                reset := headers.get("x-ratelimit-reset")
            ):
                return min(self.max_wait, max(0.0, float(reset) - now + 1))
            if self.rate_limited(exc.response.raw_response):
                # A secondary limit with no header: GitHub asks for at least a minute.
                return min(self.max_wait, 60.0)
        return float(min(self.max_wait, self.base * 2 ** (attempt - 1)))

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        seconds = self.wait_for(exc, state.attempt_number)
        log.warning("github.retry", attempt=state.attempt_number, wait_seconds=round(seconds, 2))
        return seconds

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        retrying = AsyncRetrying(
            retry=retry_if_exception(self.retryable),
            wait=self._wait,
            stop=stop_after_attempt(self.attempts),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await fn()
        raise AssertionError("unreachable")


class GitHubApp:
    """The App: its JWT-authenticated client, scoped installation tokens and clients."""

    def __init__(
        self,
        settings: Settings,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settings.app_id is None:
            raise ValueError("SHIPMATE_APP_ID is not set")
        self.app_id = settings.app_id
        self.base_url = settings.github_api_url
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self._private_key = settings.private_key_pem()
        self._tokens: dict[
            tuple[int, tuple[str, ...], tuple[tuple[str, str], ...]], InstallationToken
        ] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._slug: str | None = settings.app_slug
        self.app_client = GitHub(
            AppAuthStrategy(str(self.app_id), self._private_key),
            base_url=self.base_url,
            auto_retry=False,
            http_cache=False,
        )

    def jwt(self) -> str:
        """The App's JWT as githubkit makes it (for tests and diagnostics)."""
        from githubkit.auth.app import AppAuth

        auth = AppAuth(self.app_client, str(self.app_id), self._private_key)
        return auth._create_jwt()

    async def app_slug(self) -> str:
        if self._slug is None:
            response = await self.retry.call(
                lambda: self.app_client.rest.apps.async_get_authenticated()
            )
            data: dict[str, Any] = response.raw_response.json()
            self._slug = str(data["slug"])
        return self._slug

    async def bot_login(self) -> str:
        return f"{await self.app_slug()}[bot]"

    async def installation_token(
        self,
        installation_id: int,
        *,
        repositories: Sequence[str] = (),
        permissions: Mapping[str, str] | None = None,
    ) -> InstallationToken:
        """A token for these repositories ("owner/name" or "name") with these permissions."""
        names = tuple(sorted(r.split("/")[-1] for r in repositories))
        perms = tuple(sorted((permissions or {}).items()))
        key = (installation_id, names, perms)
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.expires_at - REFRESH_MARGIN_SECONDS > self.clock():
                return cached
            body: dict[str, Any] = {}
            if names:
                body["repositories"] = list(names)
            if perms:
                body["permissions"] = dict(perms)
            response = await self.retry.call(
                lambda: self.app_client.rest.apps.async_create_installation_access_token(
                    installation_id,
                    data=body or None,  # type: ignore[arg-type]
                )
            )
            data: dict[str, Any] = response.raw_response.json()
            token = InstallationToken(
                token=data["token"],
                expires_at=datetime.fromisoformat(
                    data["expires_at"].replace("Z", "+00:00")
                ).timestamp(),
                permissions=dict(data.get("permissions") or {}),
                repositories=names,
            )
            self._tokens[key] = token
            log.info(
                "github.token_issued", installation_id=installation_id, repositories=list(names)
            )
            return token

    def client(self, token: InstallationToken) -> GitHub[TokenAuthStrategy]:
        return GitHub(
            TokenAuthStrategy(token.token),
            base_url=self.base_url,
            auto_retry=False,
            http_cache=False,
        )

    async def installation_client(
        self,
        installation_id: int,
        *,
        repository: str | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> GitHub[TokenAuthStrategy]:
        token = await self.installation_token(
            installation_id,
            repositories=[repository] if repository else (),
            permissions=permissions,
        )
        return self.client(token)


class RepoClient:
    """The calls Shipmate makes on one repository, each through the retry policy.

    Answers are plain values read from GitHub's JSON (githubkit's strict models reject fields
    real GitHub leaves out more often than they help here).
    """

    def __init__(
        self, github: GitHub[Any], repository: str, retry: RetryPolicy | None = None
    ) -> None:
        self.github = github
        self.owner, self.repo = repository.split("/", 1)
        self.full_name = repository
        self.retry = retry or RetryPolicy()

    async def _json(self, call: Callable[[], Awaitable[Any]]) -> Any:
        response = await self.retry.call(call)
        return response.raw_response.json()

    async def repository(self) -> dict[str, Any]:
        rest = self.github.rest
        return dict(await self._json(lambda: rest.repos.async_get(self.owner, self.repo)))

    async def default_branch(self) -> str:
        return str((await self.repository())["default_branch"])

    async def branch_sha(self, branch: str) -> str | None:
        rest = self.github.rest
        try:
            data = await self._json(
                lambda: rest.repos.async_get_branch(self.owner, self.repo, branch)
            )
        except RequestFailed as exc:
            if exc.response.status_code == 404:
                return None
            raise
        return str(data["commit"]["sha"])

    async def file_text(self, path: str, ref: str) -> str | None:
        """A file's text at `ref`, or None when it does not exist there."""
        import base64

        rest = self.github.rest
        try:
            data = await self._json(
                lambda: rest.repos.async_get_content(self.owner, self.repo, path, ref=ref)
            )
        except RequestFailed as exc:
            if exc.response.status_code == 404:
                return None
            raise
        if not isinstance(data, dict) or data.get("type") != "file":
            return None
        return base64.b64decode(data.get("content") or "").decode("utf-8", errors="replace")

    async def permission(self, login: str) -> str:
        """admin, maintain, write, triage, read or none (the collaborator permission API)."""
        rest = self.github.rest
        try:
            data = await self._json(
                lambda: rest.repos.async_get_collaborator_permission_level(
                    self.owner, self.repo, login
                )
            )
        except RequestFailed as exc:
            if exc.response.status_code == 404:
                return "none"
            raise
        role = data.get("role_name")
        if role in ("admin", "maintain", "write", "triage", "read"):
            return str(role)
        return str(data.get("permission") or "none")

    async def comment(self, number: int, body: str) -> int:
        rest = self.github.rest
        data = await self._json(
            lambda: rest.issues.async_create_comment(
                self.owner, self.repo, number, data={"body": body}
            )
        )
        return int(data["id"])

    async def edit_comment(self, comment_id: int, body: str) -> None:
        rest = self.github.rest
        await self._json(
            lambda: rest.issues.async_update_comment(
                self.owner, self.repo, comment_id, data={"body": body}
            )
        )

    async def react_eyes(self, comment_id: int) -> None:
        """👀 on a comment: "seen, working on it"."""
        rest = self.github.rest
        await self._json(
            lambda: rest.reactions.async_create_for_issue_comment(
                self.owner, self.repo, comment_id, content="eyes"
            )
        )
