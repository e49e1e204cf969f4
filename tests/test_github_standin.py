"""The GitHub stand-in: githubkit, real git and the app's webhook endpoint against it."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from githubkit import AppAuthStrategy, GitHub

from bot.config import Settings
from bot.github import PUSH, GitHubApp, RepoClient, RetryPolicy
from bot.store import Store
from bot.testing.github import GitHubStandIn
from bot.web import create_app
from handlers import router
from tests.servers import running


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(tmp_path / "gh") as standin:
        yield standin


def _setup(gh: GitHubStandIn, permissions: dict[str, str] | None = None) -> tuple[Any, Any]:
    app = gh.create_app()
    gh.create_repo(
        "octo/widgets", {"README.md": "# widgets\n", ".github/shipmate.yml": "label: fix-me\n"}
    )
    gh.create_repo("octo/other", {"README.md": "other\n"})
    installation = gh.install(
        app,
        "octo",
        ["octo/widgets", "octo/other"],
        permissions or dict(PUSH),
    )
    return app, installation


def _settings(gh: GitHubStandIn, app: Any) -> Settings:
    return Settings.load(app_id=app.id, private_key=app.private_key_pem, github_api_url=gh.url)


@pytest.mark.anyio
async def test_githubkit_app_jwt_token_comment_and_check_run(gh: GitHubStandIn) -> None:
    app, installation = _setup(gh)
    issue = gh.create_issue("octo/widgets", "add() is wrong", "It subtracts.")
    shipmate = GitHubApp(_settings(gh, app))
    assert await shipmate.app_slug() == "shipmate"
    client = await shipmate.installation_client(
        installation.id, repository="octo/widgets", permissions=PUSH
    )
    repo = RepoClient(client, "octo/widgets")
    comment_id = await repo.comment(issue["number"], "Working on it")
    await repo.edit_comment(comment_id, "Done")
    await repo.react_eyes(comment_id)
    assert await repo.file_text(".github/shipmate.yml", "main") == "label: fix-me\n"
    assert await repo.file_text("missing.txt", "main") is None
    assert await repo.default_branch() == "main"
    gh.add_collaborator("octo/widgets", "alice", "maintain")
    assert await repo.permission("alice") == "maintain"
    assert await repo.permission("mallory") == "none"
    run = await client.rest.checks.async_create(
        "octo",
        "widgets",
        data={
            "name": "Shipmate",
            "head_sha": gh.branch_sha("octo/widgets", "main") or "",
            "status": "in_progress",
        },
    )
    assert run.status_code == 201
    (stored,) = gh.state.comments.values()
    assert stored["body"] == "Done" and stored["user"]["login"] == "shipmate[bot]"
    assert gh.state.reactions[0]["content"] == "eyes"
    assert [r["name"] for r in gh.state.check_runs.values()] == ["Shipmate"]
    token_request = next(r for r in gh.requests if r.path.endswith("/access_tokens"))
    assert token_request.body == {"repositories": ["widgets"], "permissions": dict(PUSH)}


@pytest.mark.anyio
async def test_scoping_bad_jwt_and_missing_permissions(gh: GitHubStandIn) -> None:
    app, installation = _setup(gh, {"contents": "read", "issues": "read", "metadata": "read"})
    gh.create_issue("octo/other", "x")
    shipmate = GitHubApp(_settings(gh, app))
    token = await shipmate.installation_token(installation.id, repositories=["octo/widgets"])
    headers = {"Authorization": f"token {token.token}"}
    other = httpx.get(f"{gh.url}/repos/octo/other", headers=headers)
    assert other.status_code == 404  # not in the token's repositories: hidden, as GitHub does
    comment = httpx.post(
        f"{gh.url}/repos/octo/widgets/issues/1/comments", headers=headers, json={"body": "x"}
    )
    assert comment.status_code in (403, 404)
    gh.create_issue("octo/widgets", "y")
    comment = httpx.post(
        f"{gh.url}/repos/octo/widgets/issues/1/comments", headers=headers, json={"body": "x"}
    )
    assert (
        comment.status_code == 403
        and comment.json()["message"] == "Resource not accessible by integration"
    )
    too_much = httpx.post(
        f"{gh.url}/app/installations/{installation.id}/access_tokens",
        headers={"Authorization": f"Bearer {shipmate.jwt()}"},
        json={"permissions": {"contents": "write"}},
    )
    assert too_much.status_code == 422
    now = int(time.time())
    long_lived = jwt.encode(
        {"iss": str(app.id), "iat": now - 60, "exp": now + 3600},
        app.private_key_pem,
        algorithm="RS256",
    )
    refused = httpx.post(
        f"{gh.url}/app/installations/{installation.id}/access_tokens",
        headers={"Authorization": f"Bearer {long_lived}"},
    )
    assert refused.status_code == 401
    other_key = gh.create_app("intruder")
    forged = jwt.encode(
        {"iss": str(app.id), "iat": now - 60, "exp": now + 500},
        other_key.private_key_pem,
        algorithm="RS256",
    )
    assert (
        httpx.get(f"{gh.url}/app", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    )


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.mark.anyio
async def test_git_clone_push_and_refusals(gh: GitHubStandIn, tmp_path: Path) -> None:
    app, installation = _setup(gh)
    shipmate = GitHubApp(_settings(gh, app))
    token = (
        await shipmate.installation_token(
            installation.id, repositories=["octo/widgets"], permissions=PUSH
        )
    ).token
    url = f"{gh.url.replace('http://', f'http://x-access-token:{token}@')}/octo/widgets.git"
    assert (
        _git("clone", "-q", f"{gh.url}/octo/widgets.git", str(tmp_path / "anon")).returncode != 0
    )  # private
    clone = tmp_path / "clone"
    assert _git("clone", "-q", url, str(clone)).returncode == 0
    (clone / "fix.txt").write_text("fixed\n")
    _git("add", "-A", cwd=clone)
    _git("commit", "-qm", "fix", cwd=clone)
    pushed = _git("push", "-q", "origin", "HEAD:refs/heads/shipmate/fix", cwd=clone)
    assert pushed.returncode == 0, pushed.stderr
    head = _git("rev-parse", "HEAD", cwd=clone).stdout.strip()
    assert gh.branch_sha("octo/widgets", "shipmate/fix") == head
    assert gh.state.pushes[-1] == {
        "repo": "octo/widgets",
        "ref": "refs/heads/shipmate/fix",
        "old": None,
        "new": head,
        "fast_forward": True,
        "pusher": "shipmate[bot]",
    }
    # A workflow change without the workflows permission is refused and moves nothing.
    (clone / ".github" / "workflows").mkdir(parents=True)
    (clone / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    _git("add", "-A", cwd=clone)
    _git("commit", "-qm", "ci", cwd=clone)
    refused = _git("push", "-q", "origin", "HEAD:refs/heads/shipmate/fix", cwd=clone)
    assert refused.returncode != 0 and "without `workflows` permission" in refused.stderr
    assert gh.branch_sha("octo/widgets", "shipmate/fix") == head
    # A read-only token cannot push at all.
    read_only = (
        await shipmate.installation_token(
            installation.id, repositories=["octo/widgets"], permissions={"contents": "read"}
        )
    ).token
    _git("remote", "set-url", "origin", url.replace(token, read_only), cwd=clone)
    denied = _git("push", "-q", "origin", "HEAD:refs/heads/other", cwd=clone)
    assert denied.returncode != 0 and gh.branch_sha("octo/widgets", "other") is None


@pytest.mark.anyio
async def test_injected_rate_limits_and_retries(gh: GitHubStandIn) -> None:
    app, installation = _setup(gh)
    gh.create_issue("octo/widgets", "x")
    gh.fail("POST /repos/{owner}/{repo}/issues/{n}/comments", "rate_limit", times=1)
    gh.fail("POST /repos/{owner}/{repo}/issues/{n}/comments", "secondary_limit", times=1)
    shipmate = GitHubApp(_settings(gh, app))
    client = await shipmate.installation_client(
        installation.id, repository="octo/widgets", permissions=PUSH
    )
    repo = RepoClient(client, "octo/widgets", RetryPolicy(max_wait=0.05, base=0.01))
    await repo.comment(1, "hello")
    statuses = [r.status for r in gh.requests if r.path.endswith("/comments")]
    assert statuses == [403, 403, 201]
    limited = [r for r in gh.requests if r.status == 403]
    assert limited


def test_rate_limit_headers_pagination_logs_and_unknown_routes(gh: GitHubStandIn) -> None:
    app, installation = _setup(gh)
    gh.create_issue("octo/widgets", "x")
    shipmate = GitHubApp(_settings(gh, app))
    import asyncio

    token = asyncio.run(shipmate.installation_token(installation.id)).token
    headers = {"Authorization": f"token {token}"}
    for i in range(5):
        httpx.post(
            f"{gh.url}/repos/octo/widgets/issues/1/comments", headers=headers, json={"body": str(i)}
        )
    page = httpx.get(f"{gh.url}/repos/octo/widgets/issues/1/comments?per_page=2", headers=headers)
    assert (
        len(page.json()) == 2
        and 'rel="next"' in page.headers["link"]
        and 'rel="last"' in page.headers["link"]
    )
    assert page.headers["x-ratelimit-remaining"].isdigit()
    gh.fail("GET /repos/{owner}/{repo}", "rate_limit")
    limited = httpx.get(f"{gh.url}/repos/octo/widgets", headers=headers)
    assert limited.status_code == 403 and limited.headers["x-ratelimit-remaining"] == "0"
    job = gh.add_job_log("octo/widgets", "E   AssertionError: boom\n")
    log = httpx.get(
        f"{gh.url}/repos/octo/widgets/actions/jobs/{job}/logs",
        headers=headers,
        follow_redirects=False,
    )
    assert log.status_code == 302
    assert httpx.get(log.headers["location"]).text == "E   AssertionError: boom\n"
    missing = httpx.get(f"{gh.url}/nope/nothing", headers=headers)
    assert missing.status_code == 404 and missing.json()["message"] == "Not Found"


def test_emitter_deliveries_are_accepted_by_the_app(gh: GitHubStandIn, tmp_path: Path) -> None:
    settings = Settings.load(webhook_secret="emit-secret", data_dir=tmp_path / "app")
    store = Store.from_settings(settings)
    store.migrate()
    with running(create_app(settings, store, router)) as base:
        response = gh.emit(
            "issue_comment",
            "created",
            {"comment": {"body": "/shipmate fix"}, "repository": {"full_name": "octo/widgets"}},
            to=f"{base}/api/github/webhooks",
            secret="emit-secret",
        )
        ping = gh.emit("ping", None, None, to=f"{base}/api/github/webhooks", secret="emit-secret")
        installed = gh.emit(
            "installation",
            "created",
            {"installation": {"id": 4242}},
            to=f"{base}/api/github/webhooks",
            secret="emit-secret",
        )
    assert response.status_code == 202
    assert ping.json()["status"] == "pong"
    assert installed.json()["status"] == "queued"
    stored = store.get_delivery(response.json()["delivery"])
    assert (
        stored is not None
        and stored.repository == "octo/widgets"
        and b"/shipmate fix" in stored.payload
    )
    store.dispose()


def test_githubkit_plain_app_client(gh: GitHubStandIn) -> None:
    app, _ = _setup(gh)
    client = GitHub(AppAuthStrategy(str(app.id), app.private_key_pem), base_url=gh.url)
    assert client.rest.apps.get_authenticated().json()["slug"] == "shipmate"
