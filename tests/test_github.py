"""App auth, token scoping and caching, the retry policy and the REST calls, against a local
uvicorn server that speaks GitHub's status codes and headers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from githubkit import GitHub
from githubkit.exception import RequestError, RequestFailed
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.config import Settings
from bot.github.client import (
    HANDLER,
    PUSH,
    CheckRun,
    GitHubApp,
    PullRequest,
    RepoClient,
    RetryPolicy,
)
from tests.servers import free_port, running

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC = KEY.public_key()


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str


@dataclass
class Fake:
    """GitHub's side: what it was asked, and the replies it gives per (method, path). A queue of
    replies is served in order; the last one is repeated."""

    token_requests: list[dict[str, Any]] = field(default_factory=list)
    token_lifetime: float = 3600
    token_failures: list[Reply] = field(default_factory=list)
    replies: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def on(self, method: str, path: str, *replies: Reply) -> None:
        self.replies[(method, path)] = list(replies)

    def fail(self, method: str, path: str, failure: Reply, times: int, success: Reply) -> None:
        self.on(method, path, *([failure] * times), success)

    def calls_to(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if (c.method, c.path) == (method, path)]


def _app(fake: Fake) -> Starlette:
    def claims_of(request: Request) -> dict[str, Any] | None:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return None
        return jwt.decode(auth[7:], PUBLIC, algorithms=["RS256"])

    async def access_token(request: Request) -> Response:
        claims = claims_of(request)
        if claims is None or claims["iss"] != "42":
            return JSONResponse({"message": "A JSON web token could not be decoded"}, 401)
        body = await request.json() if await request.body() else {}
        fake.token_requests.append({"claims": claims, "body": body})
        if fake.token_failures:
            failure = fake.token_failures.pop(0)
            return JSONResponse(failure.body, failure.status, headers=failure.headers)
        n = len(fake.token_requests)
        expires = datetime.fromtimestamp(time.time() + fake.token_lifetime, UTC)
        return JSONResponse(
            {
                "token": f"ghs_secret{n}",
                "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "permissions": body.get("permissions", {"contents": "write"}),
                "repository_selection": "selected",
            },
            201,
        )

    async def app_info(request: Request) -> Response:
        if claims_of(request) is None:
            return JSONResponse({"message": "Bad credentials"}, 401)
        return JSONResponse({"id": 42, "slug": "shipmate-test", "name": "Shipmate Test"})

    async def anything(request: Request) -> Response:
        raw = await request.body()
        fake.calls.append(
            Call(
                request.method,
                request.url.path,
                dict(request.query_params),
                await request.json() if raw else None,
                request.headers.get("authorization", ""),
            )
        )
        queue = fake.replies.get((request.method, request.url.path))
        if not queue:
            return JSONResponse({"message": "Not Found"}, 404)
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if reply.status in (301, 302):
            return RedirectResponse(reply.body, reply.status)
        if isinstance(reply.body, str):
            return PlainTextResponse(reply.body, reply.status, headers=reply.headers)
        return JSONResponse(reply.body, reply.status, headers=reply.headers)

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    return Starlette(
        routes=[
            Route("/app/installations/{id:int}/access_tokens", access_token, methods=["POST"]),
            Route("/app", app_info),
            Route("/{path:path}", anything, methods=methods),
        ]
    )


@pytest.fixture
def fake() -> Fake:
    return Fake()


@pytest.fixture
def api(fake: Fake) -> Iterator[str]:
    with running(_app(fake), lifespan="off") as base:
        yield base


class Sleeps:
    """The policy's sleep: records each wait instead of sleeping, so tests see exact waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


NOW = 1_800_000_000.0


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def policy(sleeps: Sleeps) -> RetryPolicy:
    return RetryPolicy(attempts=4, max_wait=900, base=1, sleep=sleeps, clock=lambda: NOW)


def _github_app(api: str, **kwargs: Any) -> GitHubApp:
    settings = Settings.load(app_id=42, private_key=PEM, github_api_url=api)
    return GitHubApp(settings, **kwargs)


async def _repo(app: GitHubApp, policy: RetryPolicy, permissions: Any = HANDLER) -> RepoClient:
    client = await app.installation_client(7, repository="octo/widgets", permissions=permissions)
    return RepoClient(client, "octo/widgets", policy)


COMMENTS = "/repos/octo/widgets/issues/1/comments"
CREATED = Reply(201, {"id": 1001, "body": "hello", "user": {"login": "shipmate-test[bot]"}})


# Auth.


def test_jwt_claims() -> None:
    app = _github_app("http://127.0.0.1:9")
    # The signature is checked here; the time claims are compared exactly below.
    options: jwt.types.Options = {"verify_exp": False, "verify_iat": False}
    claims = jwt.decode(app.jwt(now=NOW), PUBLIC, algorithms=["RS256"], options=options)
    assert claims == {"iss": "42", "iat": NOW - 60, "exp": NOW + 540}
    assert claims["exp"] - NOW <= 600


@pytest.mark.anyio
async def test_jwt_githubkit_sends_has_the_same_claims(api: str, fake: Fake) -> None:
    app = _github_app(api)
    before = time.time()
    await app.installation_token(7)
    claims = fake.token_requests[0]["claims"]
    assert claims["iss"] == "42"
    assert before - 62 <= claims["iat"] <= time.time() - 58
    assert claims["exp"] - before <= 600 and claims["exp"] > time.time()


@pytest.mark.anyio
async def test_token_is_scoped_to_the_repository_and_permissions(api: str, fake: Fake) -> None:
    app = _github_app(api)
    with structlog.testing.capture_logs() as logs:
        token = await app.installation_token(7, repositories=["octo/widgets"], permissions=PUSH)
    assert token.token == "ghs_secret1"
    assert token.repositories == ("widgets",) and token.permissions == dict(PUSH)
    assert token.expires_at.tzinfo is not None
    (request,) = fake.token_requests
    assert request["body"] == {"repositories": ["widgets"], "permissions": dict(PUSH)}
    assert "workflows" not in request["body"]["permissions"]
    assert "workflows" not in HANDLER
    assert "secret1" not in repr(token)
    assert logs and "secret1" not in repr(logs)


@pytest.mark.anyio
async def test_tokens_are_cached_and_refreshed_five_minutes_before_expiry(
    api: str, fake: Fake
) -> None:
    now = [time.time()]
    app = _github_app(api, clock=lambda: now[0])
    first = await app.installation_token(7, repositories=["octo/widgets"], permissions=HANDLER)
    again = await app.installation_token(7, repositories=["widgets"], permissions=dict(HANDLER))
    assert again is first and len(fake.token_requests) == 1
    other_scope = await app.installation_token(7, repositories=["octo/widgets"], permissions=PUSH)
    assert other_scope.token != first.token and len(fake.token_requests) == 2
    now[0] += 3600 - 301  # just outside the 5-minute margin: still cached
    assert await app.installation_token(7, repositories=["widgets"], permissions=HANDLER) is first
    now[0] += 2  # inside it
    refreshed = await app.installation_token(7, repositories=["octo/widgets"], permissions=HANDLER)
    assert refreshed.token != first.token and len(fake.token_requests) == 3


@pytest.mark.anyio
async def test_a_long_lived_client_refreshes_its_own_token(
    api: str, fake: Fake, policy: RetryPolicy
) -> None:
    now = [time.time()]
    app = _github_app(api, clock=lambda: now[0])
    repo = await _repo(app, policy)
    fake.on("POST", COMMENTS, CREATED)
    await repo.comment(1, "hello")
    now[0] += 3600 - 60
    await repo.comment(1, "hello again")
    seen = [c.authorization for c in fake.calls_to("POST", COMMENTS)]
    assert seen == ["token ghs_secret1", "token ghs_secret2"]


@pytest.mark.anyio
async def test_a_revoked_token_is_replaced_once(
    api: str, fake: Fake, sleeps: Sleeps, policy: RetryPolicy
) -> None:
    repo = await _repo(_github_app(api), policy)
    fake.on("POST", COMMENTS, Reply(401, {"message": "Bad credentials"}), CREATED)
    assert await repo.comment(1, "hello") == 1001
    seen = [c.authorization for c in fake.calls_to("POST", COMMENTS)]
    assert seen == ["token ghs_secret1", "token ghs_secret2"] and sleeps.waits == []
    fake.on("POST", COMMENTS, Reply(401, {"message": "Bad credentials"}))
    with pytest.raises(RequestFailed):
        await repo.comment(1, "hello")
    assert len(fake.calls_to("POST", COMMENTS)) == 4 and len(fake.token_requests) == 3


@pytest.mark.anyio
async def test_app_slug(api: str) -> None:
    app = _github_app(api)
    assert await app.app_slug() == "shipmate-test"
    assert await app.bot_login() == "shipmate-test[bot]"


@pytest.mark.anyio
async def test_a_refused_token_fails_the_client_without_retrying(
    api: str, fake: Fake, policy: RetryPolicy
) -> None:
    app = _github_app(api, retry=policy)
    fake.token_failures = [Reply(422, {"message": "There is at least one repository missing"})]
    with pytest.raises(RequestFailed) as raised:
        await app.installation_client(7, repository="octo/elsewhere", permissions=HANDLER)
    assert raised.value.response.status_code == 422 and len(fake.token_requests) == 1


# The retry policy.


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("failure", "wait"),
    [
        (
            Reply(
                403,
                {"message": "API rate limit exceeded"},
                {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 120)},
            ),
            121,
        ),
        (
            Reply(
                429, {"message": "You have exceeded a secondary rate limit"}, {"retry-after": "17"}
            ),
            17,
        ),
        (Reply(403, {"message": "You have exceeded a secondary rate limit. Please wait"}), 60),
        (Reply(502, {"message": "Server Error"}), None),
        (Reply(429, "Too Many Requests"), None),
    ],
    ids=["primary-403", "secondary-429-retry-after", "secondary-403-message", "502", "bare-429"],
)
async def test_retries_rate_limits_and_server_errors(
    api: str, fake: Fake, sleeps: Sleeps, policy: RetryPolicy, failure: Reply, wait: int | None
) -> None:
    repo = await _repo(_github_app(api), policy)
    fake.fail("POST", COMMENTS, failure, 2, CREATED)
    assert await repo.comment(1, "hello") == 1001
    calls = fake.calls_to("POST", COMMENTS)
    assert len(calls) == 3
    assert {c.authorization for c in calls} == {"token ghs_secret1"}
    assert sleeps.waits == ([wait, wait] if wait is not None else [1, 2])


@pytest.mark.anyio
async def test_waits_are_capped(api: str, fake: Fake, sleeps: Sleeps) -> None:
    capped = RetryPolicy(max_wait=0.5, sleep=sleeps, clock=lambda: NOW)
    repo = await _repo(_github_app(api), capped)
    fake.fail(
        "POST", COMMENTS, Reply(429, {"message": "slow down"}, {"retry-after": "600"}), 1, CREATED
    )
    await repo.comment(1, "hello")
    assert sleeps.waits == [0.5]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "failure",
    [
        Reply(401, {"message": "Bad credentials"}),
        Reply(404, {"message": "Not Found"}),
        Reply(422, {"message": "Validation Failed"}),
        Reply(403, {"message": "Resource not accessible by integration"}),
    ],
    ids=["401", "404", "422", "plain-403"],
)
async def test_no_retry_for_errors_that_will_not_change(
    api: str, fake: Fake, sleeps: Sleeps, policy: RetryPolicy, failure: Reply
) -> None:
    repo = await _repo(_github_app(api), policy)
    fake.on("POST", COMMENTS, failure)
    with pytest.raises(RequestFailed) as raised:
        await repo.comment(1, "hello")
    assert raised.value.response.status_code == failure.status
    # A 401 gets one fresh token (see above), never a wait-and-retry.
    expected = 2 if failure.status == 401 else 1
    assert len(fake.calls_to("POST", COMMENTS)) == expected and sleeps.waits == []


@pytest.mark.anyio
async def test_gives_up_after_the_last_attempt(
    api: str, fake: Fake, sleeps: Sleeps, policy: RetryPolicy
) -> None:
    repo = await _repo(_github_app(api), policy)
    fake.on("POST", COMMENTS, Reply(503, {"message": "unavailable"}))
    with pytest.raises(RequestFailed) as raised:
        await repo.comment(1, "hello")
    assert raised.value.response.status_code == 503
    assert len(fake.calls_to("POST", COMMENTS)) == 4 and sleeps.waits == [1, 2, 4]


@pytest.mark.anyio
async def test_every_call_that_fails_for_good_is_logged_with_method_route_and_status(
    api: str, fake: Fake, policy: RetryPolicy
) -> None:
    repo = await _repo(_github_app(api), policy)
    fake.on("POST", COMMENTS, Reply(503, {"message": "unavailable"}))
    fake.on("POST", "/repos/octo/widgets/issues/1/labels", Reply(422, {"message": "Invalid"}))
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(RequestFailed):
            await repo.comment(1, "hello")
        with pytest.raises(RequestFailed):
            await repo.add_labels(1, ["x"])
        assert await repo.branch_sha("gone") is None  # a 404 the caller expects
    failed = [
        (e["log_level"], e["method"], e["route"], e["status"])
        for e in logs
        if e["event"] == "github.failed"
    ]
    assert failed == [
        ("warning", "POST", COMMENTS, 503),  # after its retries
        ("warning", "POST", "/repos/octo/widgets/issues/1/labels", 422),
        ("info", "GET", "/repos/octo/widgets/branches/gone", 404),
    ]
    assert "ghs_secret" not in repr(logs)


@pytest.mark.anyio
async def test_a_refused_eyes_reaction_is_skipped_not_raised(
    api: str, fake: Fake, sleeps: Sleeps, policy: RetryPolicy
) -> None:
    """👀 on a comment that is gone (404) or while GitHub fails (5xx, after the retries):
    the handler goes on, so the job is not failed and retried for a courtesy."""
    repo = await _repo(_github_app(api), policy)
    reactions = "/repos/octo/widgets/issues/comments/{}/reactions"
    fake.on("POST", reactions.format(5), Reply(502, {"message": "Server Error"}))
    with structlog.testing.capture_logs() as logs:
        await repo.react_eyes(404)  # the fake answers 404 to what it does not know
        await repo.react_eyes(5)
    assert len(fake.calls_to("POST", reactions.format(404))) == 1
    assert len(fake.calls_to("POST", reactions.format(5))) == 4
    failed = [(e["route"], e["status"]) for e in logs if e["event"] == "github.failed"]
    assert failed == [(reactions.format(404), 404), (reactions.format(5), 502)]
    skipped = [e["comment_id"] for e in logs if e["event"] == "github.reaction_skipped"]
    assert skipped == [404, 5]


@pytest.mark.anyio
async def test_connection_errors_are_retried(sleeps: Sleeps, policy: RetryPolicy) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    client = GitHub("ghs_unused", base_url=nobody, auto_retry=False, http_cache=False)
    with pytest.raises(RequestError):
        await RepoClient(client, "octo/widgets", policy).comment(1, "hello")
    assert sleeps.waits == [1, 2, 4]


@pytest.mark.anyio
async def test_the_token_request_is_retried_too(
    api: str, fake: Fake, sleeps: Sleeps, policy: RetryPolicy
) -> None:
    app = _github_app(api, retry=policy)
    fake.token_failures = [Reply(502, {"message": "Server Error"})]
    token = await app.installation_token(7, repositories=["octo/widgets"], permissions=HANDLER)
    assert token.token == "ghs_secret2" and sleeps.waits == [1]


def _failed(status: int, headers: dict[str, str], text: str = "{}") -> RequestFailed:
    from githubkit.response import Response as GitHubResponse

    raw = httpx.Response(
        status, headers=headers, text=text, request=httpx.Request("GET", "http://x")
    )
    return RequestFailed(GitHubResponse(raw, Any))


def test_wait_honours_the_headers() -> None:
    policy = RetryPolicy(max_wait=900)
    assert policy.wait_for(_failed(429, {"retry-after": "17"}), 1, NOW) == 17
    http_date = "Fri, 15 Jan 2027 08:00:30 GMT"
    at = datetime(2027, 1, 15, 8, 0, 0, tzinfo=UTC).timestamp()
    assert policy.wait_for(_failed(403, {"retry-after": http_date}), 1, at) == 30
    reset = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 120)}
    assert policy.wait_for(_failed(403, reset), 1, NOW) == 121
    past = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) - 50)}
    assert policy.wait_for(_failed(403, past), 1, NOW) == 0
    secondary = _failed(403, {}, '{"message": "You have exceeded a secondary rate limit"}')
    assert policy.wait_for(secondary, 1, NOW) == 60
    assert RetryPolicy(max_wait=5).wait_for(_failed(429, {"retry-after": "600"}), 1, NOW) == 5
    assert policy.wait_for(_failed(502, {}), 3, NOW) == 4
    bare = _failed(429, {}, "Too Many Requests")
    assert policy.retryable(bare)
    assert [policy.wait_for(bare, attempt, NOW) for attempt in (1, 2, 3)] == [1, 2, 4]
    assert not policy.retryable(_failed(403, {"x-ratelimit-remaining": "12"}))


# The REST calls.


@pytest.mark.anyio
async def test_reads(api: str, fake: Fake, policy: RetryPolicy) -> None:
    repo = await _repo(_github_app(api), policy)
    fake.on("GET", "/repos/octo/widgets", Reply(200, {"default_branch": "trunk"}))
    fake.on("GET", "/repos/octo/widgets/branches/trunk", Reply(200, {"commit": {"sha": "a" * 40}}))
    fake.on(
        "GET",
        "/repos/octo/widgets/contents/.github/shipmate.yml",
        Reply(200, {"type": "file", "encoding": "base64", "content": "dGVzdDogbWFrZQo=\n"}),
    )
    fake.on(
        "GET",
        "/repos/octo/widgets/collaborators/alice/permission",
        Reply(200, {"permission": "write", "role_name": "maintain", "user": {"login": "alice"}}),
    )
    assert await repo.default_branch() == "trunk"
    assert await repo.branch_sha("trunk") == "a" * 40
    assert await repo.branch_sha("gone") is None
    assert await repo.file_text(".github/shipmate.yml", "trunk") == "test: make\n"
    assert fake.calls_to("GET", "/repos/octo/widgets/contents/.github/shipmate.yml")[0].query == {
        "ref": "trunk"
    }
    assert await repo.file_text("missing.txt", "trunk") is None
    assert await repo.permission("alice") == "maintain"
    assert await repo.permission("mallory") == "none"


@pytest.mark.anyio
async def test_conversation(api: str, fake: Fake, policy: RetryPolicy) -> None:
    repo = await _repo(_github_app(api), policy)
    fake.on("POST", COMMENTS, CREATED)
    fake.on("PATCH", "/repos/octo/widgets/issues/comments/1001", Reply(200, {"id": 1001}))
    page = [{"id": i, "body": f"c{i}", "user": {"login": "bob"}} for i in range(100)]
    fake.on("GET", COMMENTS, Reply(200, page), Reply(200, page[:3]))
    fake.on("POST", "/repos/octo/widgets/issues/comments/1001/reactions", Reply(201, {"id": 1}))
    fake.on("POST", "/repos/octo/widgets/issues/1/reactions", Reply(201, {"id": 2}))
    fake.on("POST", "/repos/octo/widgets/issues/1/labels", Reply(200, []))
    fake.on("DELETE", "/repos/octo/widgets/issues/1/labels/shipmate:fix", Reply(200, []))

    assert await repo.comment(1, "hello") == 1001
    await repo.edit_comment(1001, "edited")
    comments = await repo.comments(1)
    assert len(comments) == 103 and comments[0].user == "bob"
    await repo.react_eyes(1001)
    await repo.react_issue(1, "rocket")
    await repo.add_labels(1, ["shipmate:fix"])
    await repo.remove_label(1, "shipmate:fix")
    await repo.remove_label(1, "already-gone")

    assert [c.query.get("page") for c in fake.calls_to("GET", COMMENTS)] == ["1", "2"]
    bodies = {(c.method, c.path): c.body for c in fake.calls}
    assert bodies[("PATCH", "/repos/octo/widgets/issues/comments/1001")] == {"body": "edited"}
    assert bodies[("POST", "/repos/octo/widgets/issues/comments/1001/reactions")] == {
        "content": "eyes"
    }
    assert bodies[("POST", "/repos/octo/widgets/issues/1/reactions")] == {"content": "rocket"}
    assert bodies[("POST", "/repos/octo/widgets/issues/1/labels")] == {"labels": ["shipmate:fix"]}


URL = "https://github.com/octo/widgets/pull/5"
PR = {
    "number": 5,
    "state": "open",
    "draft": True,
    "html_url": URL,
    "head": {"ref": "shipmate/fix-1", "sha": "b" * 40, "repo": {"full_name": "octo/widgets"}},
    "base": {"ref": "trunk"},
}


@pytest.mark.anyio
async def test_pull_requests_and_reviews(api: str, fake: Fake, policy: RetryPolicy) -> None:
    repo = await _repo(_github_app(api), policy, PUSH)
    fake.on("POST", "/repos/octo/widgets/pulls", Reply(201, PR))
    fake.on("PATCH", "/repos/octo/widgets/pulls/5", Reply(200, PR))
    fake.on("GET", "/repos/octo/widgets/pulls", Reply(200, [PR]))
    review = [{"id": 9, "path": "app.py", "line": 3, "body": "rename", "user": {"login": "al"}}]
    fake.on("GET", "/repos/octo/widgets/pulls/5/reviews/77/comments", Reply(200, review))
    fake.on("POST", "/repos/octo/widgets/pulls/5/comments/9/replies", Reply(201, {"id": 10}))

    pr = await repo.create_pull(
        head="shipmate/fix-1", base="trunk", title="Fix", body="Fixes #1", draft=True
    )
    assert pr == PullRequest(
        5, "open", True, "shipmate/fix-1", "b" * 40, "octo/widgets", "trunk", URL
    )
    await repo.update_pull(5, body="Fixes #1\n\nTested.")
    assert [p.number for p in await repo.open_pulls_for_branch("shipmate/fix-1")] == [5]
    (comment,) = await repo.review_comments(5, 77)
    assert (comment.path, comment.line, comment.body) == ("app.py", 3, "rename")
    assert await repo.reply_to_review_comment(5, 9, "Renamed.") == 10

    created = fake.calls_to("POST", "/repos/octo/widgets/pulls")[0].body
    assert created == {
        "head": "shipmate/fix-1",
        "base": "trunk",
        "title": "Fix",
        "body": "Fixes #1",
        "draft": True,
    }
    assert fake.calls_to("PATCH", "/repos/octo/widgets/pulls/5")[0].body == {
        "body": "Fixes #1\n\nTested."
    }
    listed = fake.calls_to("GET", "/repos/octo/widgets/pulls")[0].query
    assert listed["state"] == "open" and listed["head"] == "octo:shipmate/fix-1"


RUN = {
    "id": 300,
    "name": "Shipmate",
    "head_sha": "c" * 40,
    "status": "completed",
    "conclusion": "failure",
    "output": {"title": "Tests failed", "summary": "1 failed", "text": None},
    "check_suite": {"id": 400},
    "app": {"slug": "shipmate-test"},
}


@pytest.mark.anyio
async def test_checks_statuses_actions_and_deployments(
    api: str, fake: Fake, policy: RetryPolicy
) -> None:
    repo = await _repo(_github_app(api), policy)
    fake.on("POST", "/repos/octo/widgets/check-runs", Reply(201, {**RUN, "status": "in_progress"}))
    fake.on("PATCH", "/repos/octo/widgets/check-runs/300", Reply(200, RUN))
    fake.on("GET", "/repos/octo/widgets/check-runs/300", Reply(200, RUN))
    suite = {"id": 400, "head_sha": "c" * 40, "head_branch": "x", "conclusion": "failure"}
    fake.on("GET", "/repos/octo/widgets/check-suites/400", Reply(200, suite))
    combined = {
        "sha": "c" * 40,
        "state": "failure",
        "statuses": [{"context": "ci/x", "state": "failure", "target_url": "https://ci/1"}],
    }
    fake.on("GET", f"/repos/octo/widgets/commits/{'c' * 40}/status", Reply(200, combined))
    fake.on("GET", "/repos/octo/widgets/actions/runs/500", Reply(200, {"id": 500, "name": "CI"}))
    jobs = {
        "total_count": 1,
        "jobs": [
            {
                "id": 600,
                "name": "test",
                "conclusion": "failure",
                "steps": [{"name": "pytest", "conclusion": "failure"}],
            }
        ],
    }
    fake.on("GET", "/repos/octo/widgets/actions/runs/500/jobs", Reply(200, jobs))
    fake.on("GET", "/repos/octo/widgets/actions/jobs/600/logs", Reply(302, f"{api}/blob/log/600"))
    fake.on("GET", "/blob/log/600", Reply(200, "##[error]AssertionError: 1 != 2\n"))
    fake.on("GET", "/repos/octo/widgets/deployments/700", Reply(200, {"id": 700, "sha": "c" * 40}))
    statuses = [{"id": 1, "state": "failure", "log_url": "https://deploy/log"}]
    fake.on("GET", "/repos/octo/widgets/deployments/700/statuses", Reply(200, statuses))

    started = await repo.create_check_run(name="Shipmate", head_sha="c" * 40, title="Planning")
    assert started.status == "in_progress"
    done = await repo.update_check_run(
        300, conclusion="failure", title="Tests failed", summary="1 failed"
    )
    assert done == CheckRun(
        300,
        "Shipmate",
        "c" * 40,
        "completed",
        "failure",
        "Tests failed",
        "1 failed",
        None,
        None,
        "shipmate-test",
        400,
    )
    assert (await repo.check_run(300)).check_suite_id == 400
    assert (await repo.check_suite(400)).conclusion == "failure"
    status = await repo.combined_status("c" * 40)
    assert status.state == "failure" and status.statuses[0].target_url == "https://ci/1"
    assert (await repo.workflow_run(500)).name == "CI"
    (job,) = await repo.workflow_jobs(500)
    assert job.failed_steps == ("pytest",)
    assert await repo.job_log(600) == "##[error]AssertionError: 1 != 2\n"
    assert await repo.job_log(601) is None
    deployment = await repo.deployment(700)
    assert deployment is not None and deployment.sha == "c" * 40
    assert await repo.deployment(701) is None
    assert (await repo.deployment_statuses(700))[0].log_url == "https://deploy/log"

    assert fake.calls_to("POST", "/repos/octo/widgets/check-runs")[0].body == {
        "name": "Shipmate",
        "head_sha": "c" * 40,
        "status": "in_progress",
        "output": {"title": "Planning", "summary": ""},
    }
    assert fake.calls_to("PATCH", "/repos/octo/widgets/check-runs/300")[0].body == {
        "status": "completed",
        "conclusion": "failure",
        "output": {"title": "Tests failed", "summary": "1 failed"},
    }
