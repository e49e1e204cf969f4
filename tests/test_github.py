"""App auth, token scoping and caching, and the retry policy, against a local server that speaks
GitHub's status codes and headers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from githubkit.exception import RequestFailed
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.config import Settings
from bot.github import PUSH, READ, GitHubApp, RepoClient, RetryPolicy
from tests.servers import running

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC = KEY.public_key()


@dataclass
class Fake:
    """GitHub's side: token requests seen, and failures to serve before succeeding."""

    token_requests: list[dict[str, Any]] = field(default_factory=list)
    token_lifetime: float = 3600
    failures: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    comment_calls: int = 0
    tokens_seen: list[str] = field(default_factory=list)


def _app(fake: Fake) -> Starlette:
    def check_jwt(request: Request) -> dict[str, Any] | None:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return None
        return jwt.decode(auth[7:], PUBLIC, algorithms=["RS256"])

    async def access_token(request: Request) -> Response:
        claims = check_jwt(request)
        if claims is None or claims["iss"] != "42":
            return JSONResponse({"message": "A JSON web token could not be decoded"}, 401)
        body = await request.json() if await request.body() else {}
        fake.token_requests.append({"claims": claims, "body": body})
        n = len(fake.token_requests)
        expires = datetime.fromtimestamp(time.time() + fake.token_lifetime, UTC)
        return JSONResponse(
            {
                "token": f"ghs_token{n}",
                "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "permissions": body.get("permissions", {"contents": "write"}),
                "repository_selection": "selected",
            },
            201,
        )

    async def app_info(request: Request) -> Response:
        if check_jwt(request) is None:
            return JSONResponse({"message": "Bad credentials"}, 401)
        return JSONResponse({"id": 42, "slug": "shipmate-test", "name": "Shipmate Test"})

    async def comment(request: Request) -> Response:
        fake.comment_calls += 1
        fake.tokens_seen.append(request.headers.get("authorization", ""))
        if fake.failures:
            status, headers, message = fake.failures.pop(0)
            return JSONResponse({"message": message}, status, headers=headers)
        body = await request.json()
        return JSONResponse({"id": 1000 + fake.comment_calls, "body": body["body"]}, 201)

    return Starlette(
        routes=[
            Route("/app/installations/{id:int}/access_tokens", access_token, methods=["POST"]),
            Route("/app", app_info),
            Route("/repos/{owner}/{repo}/issues/{n:int}/comments", comment, methods=["POST"]),
        ]
    )


@pytest.fixture
def fake() -> Fake:
    return Fake()


@pytest.fixture
def api(fake: Fake) -> Iterator[str]:
    with running(_app(fake), lifespan="off") as base:
        yield base


def _app_client(api: str, **kwargs: Any) -> GitHubApp:
    settings = Settings.load(app_id=42, private_key=PEM, github_api_url=api)
    return GitHubApp(settings, **kwargs)


def test_jwt_claims() -> None:
    app = _app_client("http://127.0.0.1:9")
    now = time.time()
    claims = jwt.decode(app.jwt(), PUBLIC, algorithms=["RS256"])
    assert claims["iss"] == "42"
    assert now - 62 <= claims["iat"] <= now - 58
    assert claims["exp"] - claims["iat"] <= 600
    assert claims["exp"] > now


@pytest.mark.anyio
async def test_token_is_scoped_to_the_repository_and_permissions(api: str, fake: Fake) -> None:
    app = _app_client(api)
    token = await app.installation_token(7, repositories=["octo/widgets"], permissions=PUSH)
    assert token.token == "ghs_token1"
    (request,) = fake.token_requests
    assert request["body"] == {"repositories": ["widgets"], "permissions": dict(PUSH)}
    assert "workflows" not in request["body"]["permissions"]
    assert "ghs_token1" not in repr(token)


@pytest.mark.anyio
async def test_tokens_are_cached_and_refreshed_five_minutes_before_expiry(
    api: str, fake: Fake
) -> None:
    now = [time.time()]
    app = _app_client(api, clock=lambda: now[0])
    first = await app.installation_token(7, repositories=["octo/widgets"], permissions=READ)
    again = await app.installation_token(7, repositories=["octo/widgets"], permissions=READ)
    assert again is first and len(fake.token_requests) == 1
    other_scope = await app.installation_token(7, repositories=["octo/widgets"], permissions=PUSH)
    assert other_scope.token != first.token and len(fake.token_requests) == 2
    now[0] += 3600 - 299  # inside the 5-minute margin
    refreshed = await app.installation_token(7, repositories=["octo/widgets"], permissions=READ)
    assert refreshed.token != first.token and len(fake.token_requests) == 3


@pytest.mark.anyio
async def test_app_slug(api: str) -> None:
    app = _app_client(api)
    assert await app.app_slug() == "shipmate-test"
    assert await app.bot_login() == "shipmate-test[bot]"


def _repo(app: GitHubApp, api: str, client: Any) -> RepoClient:
    return RepoClient(client, "octo/widgets", RetryPolicy(attempts=4, max_wait=0.05, base=0.01))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "headers", "message"),
    [
        (
            403,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 1)},
            "API rate limit exceeded",
        ),
        (429, {"retry-after": "1"}, "You have exceeded a secondary rate limit"),
        (403, {}, "You have exceeded a secondary rate limit. Please wait a few minutes"),
        (502, {}, "Server Error"),
    ],
)
async def test_retries_rate_limits_and_server_errors(
    api: str, fake: Fake, status: int, headers: dict[str, str], message: str
) -> None:
    app = _app_client(api)
    client = await app.installation_client(7, repository="octo/widgets", permissions=READ)
    fake.failures = [(status, headers, message)] * 2
    comment_id = await _repo(app, api, client).comment(1, "hello")
    assert comment_id == 1003 and fake.comment_calls == 3
    assert all(seen == "token ghs_token1" for seen in fake.tokens_seen)


@pytest.mark.anyio
@pytest.mark.parametrize("status", [401, 404, 422])
async def test_no_retry_for_errors_that_will_not_change(api: str, fake: Fake, status: int) -> None:
    app = _app_client(api)
    client = await app.installation_client(7, repository="octo/widgets")
    fake.failures = [(status, {}, "nope")]
    with pytest.raises(RequestFailed):
        await _repo(app, api, client).comment(1, "hello")
    assert fake.comment_calls == 1


@pytest.mark.anyio
async def test_plain_403_is_not_retried(api: str, fake: Fake) -> None:
    app = _app_client(api)
    client = await app.installation_client(7, repository="octo/widgets")
    fake.failures = [(403, {}, "Resource not accessible by integration")]
    with pytest.raises(RequestFailed):
        await _repo(app, api, client).comment(1, "hello")
    assert fake.comment_calls == 1


@pytest.mark.anyio
async def test_gives_up_after_the_last_attempt(api: str, fake: Fake) -> None:
    app = _app_client(api)
    client = await app.installation_client(7, repository="octo/widgets")
    fake.failures = [(503, {}, "unavailable")] * 10
    with pytest.raises(RequestFailed):
        await _repo(app, api, client).comment(1, "hello")
    assert fake.comment_calls == 4


def _failed(status: int, headers: dict[str, str], text: str = "{}") -> RequestFailed:
    from githubkit.response import Response as GitHubResponse

    raw = httpx.Response(
        status, headers=headers, text=text, request=httpx.Request("GET", "http://x")
    )
    return RequestFailed(GitHubResponse(raw, Any))  # type: ignore[arg-type]


def test_wait_honours_the_headers() -> None:
    policy = RetryPolicy(max_wait=900)
    now = 1_000_000.0
    assert policy.wait_for(_failed(429, {"retry-after": "17"}), 1, now) == 17
    reset = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(now) + 120)}
    assert policy.wait_for(_failed(403, reset), 1, now) == 121
    secondary = _failed(403, {}, '{"message": "You have exceeded a secondary rate limit"}')
    assert policy.wait_for(secondary, 1, now) == 60
    assert RetryPolicy(max_wait=5).wait_for(_failed(429, {"retry-after": "600"}), 1, now) == 5
    assert policy.wait_for(_failed(502, {}), 3, now) == 4
