"""GitHub App auth: the App JWT, installation tokens scoped to one repository and the permissions
a step needs, cached until 5 minutes before they expire, and githubkit clients that use them.

githubkit does the App side: `AppAuthStrategy` signs the JWT for every App request (RS256,
`iat` 60 s in the past) and `rest.apps.async_create_installation_access_token` asks for a token
with `repositories` and `permissions`. Its `as_installation(installation_id, repositories=,
permissions=)` scopes tokens the same way, but keeps the token inside its auth flow and reuses
it until 1 minute before expiry. We keep our own cache for what that does not give: the raw
token, which git needs for clones and pushes; a 5-minute refresh margin, so a push or a long
step never starts with a token about to expire; the token request under our retry policy; and
one new token after a 401 (revoked before its expiry).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import jwt as pyjwt
import structlog
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.auth.base import BaseAuthStrategy

from bot.config import Settings
from bot.github.retry import RetryPolicy

if TYPE_CHECKING:
    from githubkit import GitHubCore

log = structlog.get_logger("shipmate.github")

# The least each step needs. Never `workflows`: Shipmate does not touch CI definitions.
# What a webhook handler may do: read the repository, talk on issues and pull requests
# (comments, reactions, labels) and report check runs. Runs mint narrower tokens per step.
HANDLER: Mapping[str, str] = {
    "metadata": "read",
    "contents": "read",
    "issues": "write",  # comments, reactions and labels are issue writes
    "pull_requests": "read",
    "checks": "write",
    "statuses": "read",
    "actions": "read",
    "deployments": "read",
}
PUSH: Mapping[str, str] = {**HANDLER, "contents": "write", "pull_requests": "write"}

REFRESH_MARGIN_SECONDS = 300.0
JWT_BACKDATE_SECONDS = 60
JWT_LIFETIME_SECONDS = 9 * 60  # GitHub refuses an `exp` more than 10 minutes ahead

TokenKey = tuple[int, tuple[str, ...], tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class InstallationToken:
    token: str = field(repr=False)
    expires_at: datetime
    permissions: dict[str, str]
    repositories: tuple[str, ...]

    def fresh(self, now: float, margin: float = REFRESH_MARGIN_SECONDS) -> bool:
        return self.expires_at.timestamp() - margin > now


def _scope(
    installation_id: int, repositories: Sequence[str], permissions: Mapping[str, str] | None
) -> TokenKey:
    # GitHub takes repository names without the owner: an installation has one owner.
    names = tuple(sorted({r.rsplit("/", 1)[-1] for r in repositories}))
    return installation_id, names, tuple(sorted((permissions or {}).items()))


def _next_cursor(link: str) -> str | None:
    """The `cursor` of the `rel="next"` page in a `link` header (GitHub's cursor paging)."""
    for part in link.split(","):
        if 'rel="next"' in part and "cursor=" in part:
            return part.split("cursor=", 1)[1].split("&", 1)[0].split(">", 1)[0]
    return None


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
        self._tokens: dict[TokenKey, InstallationToken] = {}
        self._locks: dict[TokenKey, asyncio.Lock] = {}
        self._slug: str | None = settings.app_slug
        self.app_client = GitHub(
            AppAuthStrategy(str(self.app_id), self._private_key),
            base_url=self.base_url,
            auto_retry=False,
            http_cache=False,
            ssl_verify=tls_context(),
        )

    def jwt(self, now: float | None = None) -> str:
        """An App JWT with the claims githubkit signs: `iss` = App id, `iat` = now - 60 s,
        `exp` = now + 9 min."""
        now = self.clock() if now is None else now
        claims = {
            "iss": str(self.app_id),
            "iat": int(now) - JWT_BACKDATE_SECONDS,
            "exp": int(now) + JWT_LIFETIME_SECONDS,
        }
        return pyjwt.encode(claims, self._private_key, algorithm="RS256")

    async def app_slug(self) -> str:
        """`GET /app`'s slug, asked once; the bot's login is `f"{slug}[bot]"`."""
        if self._slug is None:
            response = await self.retry.call(self.app_client.rest.apps.async_get_authenticated)
            data: dict[str, Any] = response.raw_response.json()
            self._slug = str(data["slug"])
        return self._slug

    async def bot_login(self) -> str:
        return f"{await self.app_slug()}[bot]"

    async def redeliver(self, guid: str, *, max_pages: int = 10) -> bool:
        """Ask GitHub to send the delivery with this `X-GitHub-Delivery` again. GitHub's
        redelivery API takes its own numeric id, found by paging the App's recent deliveries;
        False when it is not among them (GitHub keeps a few days)."""
        rest = self.app_client.rest.apps
        cursor: str | None = None
        for _ in range(max_pages):

            async def page(cursor: str | None = cursor) -> Any:
                return await rest.async_list_webhook_deliveries(per_page=100, cursor=cursor)

            response = await self.retry.call(page)
            listed: list[dict[str, Any]] = response.raw_response.json()
            for delivery in listed:
                if delivery.get("guid") == guid:
                    number = int(delivery["id"])

                    async def attempt(number: int = number) -> Any:
                        return await rest.async_redeliver_webhook_delivery(number)

                    await self.retry.call(attempt)
                    return True
            cursor = _next_cursor(response.raw_response.headers.get("link", ""))
            if cursor is None:
                return False
        return False

    async def installation_token(
        self,
        installation_id: int,
        *,
        repositories: Sequence[str] = (),
        permissions: Mapping[str, str] | None = None,
    ) -> InstallationToken:
        """A token for these repositories ("owner/name" or "name") with these permissions,
        reused until 5 minutes before it expires."""
        key = _scope(installation_id, repositories, permissions)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.fresh(self.clock()):
                return cached
            _, names, perms = key
            body: dict[str, Any] = {}
            if names:
                body["repositories"] = list(names)
            if perms:
                body["permissions"] = dict(perms)
            create = self.app_client.rest.apps.async_create_installation_access_token
            response = await self.retry.call(
                lambda: create(installation_id, data=body)  # type: ignore[call-overload]
            )
            data: dict[str, Any] = response.raw_response.json()
            token = InstallationToken(
                token=str(data["token"]),
                expires_at=datetime.fromisoformat(str(data["expires_at"]).replace("Z", "+00:00")),
                permissions=dict(data.get("permissions") or {}),
                repositories=names,
            )
            self._tokens[key] = token
            log.info(
                "github.token_issued",
                installation_id=installation_id,
                repositories=list(names),
                permissions=token.permissions,
                expires_at=token.expires_at.astimezone(UTC).isoformat(),
            )
            return token

    def forget(self, installation_id: int, token: InstallationToken | None = None) -> None:
        """Drop an installation's cached tokens (uninstalled), or just `token` (refused)."""
        for key, cached in list(self._tokens.items()):
            if key[0] == installation_id and (token is None or cached is token):
                del self._tokens[key]

    def client(self, token: InstallationToken) -> GitHub[TokenAuthStrategy]:
        """A client bound to one fixed token."""
        return GitHub(
            TokenAuthStrategy(token.token),
            base_url=self.base_url,
            auto_retry=False,
            http_cache=False,
            ssl_verify=tls_context(),
        )

    async def installation_client(
        self,
        installation_id: int,
        *,
        repository: str | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> GitHub[ScopedInstallationAuthStrategy]:
        """A client for one repository ("owner/name") with these permissions.

        Every request takes the cached scoped token, so a long run gets a fresh one before the
        old one expires. The first token is fetched here, so a refused scope fails now.
        """
        repositories = (repository,) if repository else ()
        await self.installation_token(
            installation_id, repositories=repositories, permissions=permissions
        )
        strategy = ScopedInstallationAuthStrategy(self, installation_id, repositories, permissions)
        return GitHub(
            strategy,
            base_url=self.base_url,
            auto_retry=False,
            http_cache=False,
            ssl_verify=tls_context(),
        )


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context a process: githubkit opens an httpx client per request outside a
    `with`, and each new client otherwise loads the CA bundle again (~10 ms of CPU, over
    100 ms on a busy host), which was most of a webhook job's time. The same trust as
    httpx's own default."""
    return httpx.create_ssl_context()


class _ScopedTokenAuth(httpx.Auth):
    def __init__(self, strategy: ScopedInstallationAuthStrategy) -> None:
        self.strategy = strategy

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, Any, None]:
        raise RuntimeError("Shipmate's installation clients are async-only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        s = self.strategy
        token = await s.token()
        request.headers["Authorization"] = f"token {token.token}"
        response = yield request
        if response.status_code == 401:
            # Revoked before its expiry (e.g. the installation's permissions changed): one new
            # token, once. A second 401 is final.
            s.app.forget(s.installation_id, token)
            token = await s.token()
            request.headers["Authorization"] = f"token {token.token}"
            yield request


@dataclass(frozen=True)
class ScopedInstallationAuthStrategy(BaseAuthStrategy):
    """githubkit auth that signs each request with the App's cached, scoped installation token."""

    app: GitHubApp
    installation_id: int
    repositories: tuple[str, ...] = ()
    permissions: Mapping[str, str] | None = None

    async def token(self) -> InstallationToken:
        return await self.app.installation_token(
            self.installation_id, repositories=self.repositories, permissions=self.permissions
        )

    def get_auth_flow(self, github: GitHubCore[Any]) -> httpx.Auth:
        return _ScopedTokenAuth(self)
