"""The GitHub stand-in: githubkit, real git and the app's webhook endpoint against it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from githubkit import AppAuthStrategy, GitHub
from githubkit.exception import RequestFailed

from bot.config import Settings
from bot.db.store import Store
from bot.github.client import (
    HANDLER,
    PUSH,
    Deployment,
    GitHubApp,
    RepoClient,
    RetryPolicy,
    WorkflowRun,
)
from bot.intake.app import create_app
from handlers import router
from standins.github import GitHubStandIn
from standins.server import free_port
from tests.dbs import migrate_all
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
    migrate_all(store)
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


WIDGETS = "octo/widgets"


async def _repo(
    gh: GitHubStandIn, app: Any, installation: Any, permissions: Mapping[str, str]
) -> tuple[GitHub[Any], RepoClient]:
    shipmate = GitHubApp(_settings(gh, app))
    client = await shipmate.installation_client(
        installation.id, repository=WIDGETS, permissions=permissions
    )
    return client, RepoClient(client, WIDGETS, RetryPolicy(max_wait=0.05, base=0.01))


async def _status_of(call: Awaitable[Any]) -> int:
    try:
        return int((await call).status_code)
    except RequestFailed as exc:
        return exc.response.status_code


@pytest.mark.anyio
async def test_workflow_runs_jobs_logs_and_their_check_suite(gh: GitHubStandIn) -> None:
    app, installation = _setup(gh)
    sha = gh.commit(WIDGETS, "shipmate/fix", {"calc.py": "x = 1\n"}, "Fix add()")
    pull = gh.create_pull(WIDGETS, "shipmate/fix", "Fix add()", "shipmate[bot]")
    run = gh.create_workflow_run(
        WIDGETS,
        name="CI",
        head_sha=sha,
        head_branch="shipmate/fix",
        jobs=[
            {"name": "lint", "conclusion": "success", "log": "all clean\n"},
            {"name": "test", "conclusion": "failure", "log": "E   assert 1 == 2\n"},
        ],
    )
    client, repo = await _repo(gh, app, installation, HANDLER)
    assert await repo.workflow_run(run["id"]) == WorkflowRun(
        run["id"],
        "CI",
        sha,
        "shipmate/fix",
        "completed",
        "failure",
        run["html_url"],
        run["workflow_id"],
        1,
        triggering_actor="octocat",
    )
    jobs = await repo.workflow_jobs(run["id"])
    assert [(j.name, j.conclusion, j.failed_steps) for j in jobs] == [
        ("lint", "success", ()),
        ("test", "failure", ("Run test",)),
    ]
    assert await repo.job_log(jobs[1].id) == "E   assert 1 == 2\n"
    rest = client.rest
    parsed = (await rest.actions.async_get_workflow_run("octo", "widgets", run["id"])).parsed_data
    assert [p.number for p in parsed.pull_requests or []] == [pull["number"]]
    assert parsed.head_commit is not None and parsed.head_commit.message == "Fix add()"
    job = (
        await rest.actions.async_get_job_for_workflow_run("octo", "widgets", jobs[1].id)
    ).parsed_data
    assert job.run_id == run["id"] and job.workflow_name == "CI" and job.head_sha == sha
    suite = await repo.check_suite(run["check_suite_id"])
    assert (suite.head_sha, suite.head_branch, suite.conclusion) == (sha, "shipmate/fix", "failure")
    in_suite = (await rest.checks.async_list_for_suite("octo", "widgets", suite.id)).parsed_data
    assert [(r.id, r.name, r.conclusion) for r in in_suite.check_runs] == [
        (jobs[0].id, "lint", "success"),
        (jobs[1].id, "test", "failure"),
    ]  # a job is the check run of the same id
    assert all(r.app is not None and r.app.slug == "github-actions" for r in in_suite.check_runs)
    for_ref = (
        await rest.checks.async_list_suites_for_ref("octo", "widgets", "shipmate/fix")
    ).parsed_data
    assert [s.id for s in for_ref.check_suites] == [suite.id]
    listed = (
        await rest.actions.async_list_workflow_runs_for_repo("octo", "widgets", head_sha=sha)
    ).parsed_data
    assert [r.id for r in listed.workflow_runs] == [run["id"]]
    assert await repo.job_log(gh.add_job_log(WIDGETS, "plain log\n")) == "plain log\n"
    assert await _status_of(rest.actions.async_get_workflow_run("octo", "widgets", 1)) == 404
    no_actions = dict(HANDLER)
    del no_actions["actions"]
    _, blind = await _repo(gh, app, installation, no_actions)
    with pytest.raises(RequestFailed) as refused:
        await blind.workflow_run(run["id"])
    assert refused.value.response.status_code == 403


@pytest.mark.anyio
async def test_check_suites_of_other_apps_and_the_apps_own(gh: GitHubStandIn) -> None:
    app, installation = _setup(gh)
    sha = gh.branch_sha(WIDGETS, "main") or ""
    made = gh.create_check_suite(
        WIDGETS,
        head_sha=sha,
        head_branch="main",
        app_slug="circleci",
        check_runs=[
            {
                "name": "build",
                "conclusion": "failure",
                "output": {"title": "Build failed", "summary": "1 error", "text": "a.c:3: error"},
            }
        ],
    )
    client, repo = await _repo(gh, app, installation, HANDLER)
    suite = await repo.check_suite(made["id"])
    assert (suite.status, suite.conclusion, suite.head_branch) == ("completed", "failure", "main")
    runs = (await client.rest.checks.async_list_for_suite("octo", "widgets", made["id"])).json()
    build = runs["check_runs"][0]
    assert runs["total_count"] == 1 and build["output"]["text"] == "a.c:3: error"
    assert build["app"]["slug"] == "circleci" and build["check_suite"]["id"] == made["id"]
    own = await repo.create_check_run(name="Shipmate", head_sha=sha)
    assert own.check_suite_id not in (None, made["id"]) and own.app_slug == "shipmate"
    pending = await repo.check_suite(own.check_suite_id or 0)
    assert (pending.status, pending.conclusion) == ("in_progress", None)
    await repo.update_check_run(own.id, conclusion="success", title="Done", summary="ok")
    done = await repo.check_suite(own.check_suite_id or 0)
    assert (done.status, done.conclusion) == ("completed", "success")
    rest = client.rest
    by_branch = (await rest.checks.async_list_for_ref("octo", "widgets", "main")).parsed_data
    assert sorted(r.name for r in by_branch.check_runs) == ["Shipmate", "build"]
    named = (
        await rest.checks.async_list_for_ref("octo", "widgets", sha, check_name="build")
    ).parsed_data
    assert [r.name for r in named.check_runs] == ["build"]
    suites = (await rest.checks.async_list_suites_for_ref("octo", "widgets", sha)).parsed_data
    assert suites.total_count == 2


@pytest.mark.anyio
async def test_deployments_and_their_statuses(gh: GitHubStandIn) -> None:
    app, installation = _setup(gh, {**PUSH, "deployments": "write"})
    sha = gh.commit(WIDGETS, "shipmate/fix", {"calc.py": "x = 1\n"}, "Fix add()")
    made = gh.create_deployment(WIDGETS, ref="shipmate/fix", sha=sha)
    gh.add_deployment_status(WIDGETS, made["id"], state="in_progress")
    gh.add_deployment_status(
        WIDGETS, made["id"], state="failure", description="/healthz: 500", log_url="https://ci/1"
    )
    client, repo = await _repo(gh, app, installation, HANDLER)
    assert await repo.deployment(made["id"]) == Deployment(
        made["id"], sha, "shipmate/fix", "production"
    )
    assert await repo.deployment(424242) is None
    statuses = await repo.deployment_statuses(made["id"])
    assert [(s.state, s.description, s.log_url) for s in statuses] == [
        ("failure", "/healthz: 500", "https://ci/1"),
        ("in_progress", "", ""),
    ]  # newest first
    rest = client.rest
    listed = (await rest.repos.async_list_deployments("octo", "widgets", sha=sha)).parsed_data
    assert [d.id for d in listed] == [made["id"]]
    assert (
        await rest.repos.async_list_deployments("octo", "widgets", environment="staging")
    ).json() == []
    parsed = (
        await rest.repos.async_list_deployment_statuses("octo", "widgets", made["id"])
    ).parsed_data
    assert parsed[0].state == "failure" and parsed[0].creator is not None
    assert (
        await _status_of(
            rest.repos.async_create_deployment("octo", "widgets", data={"ref": "main"})
        )
        == 403
    )  # HANDLER has deployments: read
    writer, _ = await _repo(gh, app, installation, {**HANDLER, "deployments": "write"})
    created = (
        await writer.rest.repos.async_create_deployment(
            "octo", "widgets", data={"ref": "main", "environment": "staging"}
        )
    ).parsed_data
    assert created.sha == gh.branch_sha(WIDGETS, "main") and created.creator is not None
    assert created.creator.login == "shipmate[bot]"
    status = await writer.rest.repos.async_create_deployment_status(
        "octo", "widgets", created.id, data={"state": "success"}
    )
    assert status.status_code == 201 and status.parsed_data.state == "success"
    assert (
        await _status_of(
            writer.arequest(
                "POST",
                f"/repos/octo/widgets/deployments/{created.id}/statuses",
                json={"state": "exploded"},
            )
        )
        == 422
    )
    assert (
        await _status_of(
            writer.rest.repos.async_create_deployment("octo", "widgets", data={"ref": "nowhere"})
        )
        == 422
    )


@pytest.mark.anyio
async def test_commit_pulls_merge_and_commit_status_by_branch(gh: GitHubStandIn) -> None:
    app, installation = _setup(gh, {**PUSH, "statuses": "write"})
    first = gh.commit(WIDGETS, "feature", {"a.txt": "1\n"}, "first")
    head = gh.commit(WIDGETS, "feature", {"a.txt": "2\n"}, "second")
    main_before = gh.branch_sha(WIDGETS, "main")
    pull = gh.create_pull(WIDGETS, "feature", "A feature", "alice")
    client, repo = await _repo(gh, app, installation, {**HANDLER, "statuses": "write"})
    rest = client.rest
    for sha in (head, first):
        found = await rest.repos.async_list_pull_requests_associated_with_commit(
            "octo", "widgets", sha
        )
        assert [p.number for p in found.parsed_data] == [pull["number"]]
    assert (
        await rest.repos.async_list_pull_requests_associated_with_commit(
            "octo", "widgets", main_before or ""
        )
    ).json() == []
    merged = gh.merge_pull(WIDGETS, pull["number"])
    parents = subprocess.run(
        ["git", "rev-list", "--parents", "-n1", merged],
        cwd=gh.state.repos[WIDGETS].path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert gh.branch_sha(WIDGETS, "main") == merged and parents[1:] == [main_before, head]
    after = await rest.pulls.async_get("octo", "widgets", pull["number"])
    assert (after.parsed_data.state, after.parsed_data.merged) == ("closed", True)
    assert after.json()["merge_commit_sha"] == merged
    by_merge = await rest.repos.async_list_pull_requests_associated_with_commit(
        "octo", "widgets", merged
    )
    assert [p["number"] for p in by_merge.json()] == [pull["number"]]
    with pytest.raises(ValueError, match="closed"):
        gh.merge_pull(WIDGETS, pull["number"])
    posted = await rest.repos.async_create_commit_status(
        "octo", "widgets", merged, data={"state": "failure", "context": "ci/build"}
    )
    assert posted.status_code == 201
    combined = await repo.combined_status("main")
    assert (combined.sha, combined.state) == (merged, "failure")
    assert [s.context for s in combined.statuses] == ["ci/build"]


@pytest.mark.anyio
async def test_reviews_are_created_and_replies_need_their_comment(gh: GitHubStandIn) -> None:
    app, installation = _setup(gh)
    gh.commit(WIDGETS, "feature", {"a.txt": "1\n"}, "first")
    pull = gh.create_pull(WIDGETS, "feature", "A feature", "alice")
    number = pull["number"]
    client, repo = await _repo(gh, app, installation, PUSH)
    rest = client.rest
    review = (
        await rest.pulls.async_create_review(
            "octo",
            "widgets",
            number,
            data={
                "event": "REQUEST_CHANGES",
                "body": "Two things",
                "comments": [{"path": "a.txt", "line": 1, "body": "Use 3"}],
            },
        )
    ).parsed_data
    assert review.state == "CHANGES_REQUESTED" and review.user is not None
    assert review.user.login == "shipmate[bot]" and review.commit_id == pull["head"]["sha"]
    listed = (await rest.pulls.async_list_reviews("octo", "widgets", number)).parsed_data
    assert [r.id for r in listed] == [review.id]
    (comment,) = await repo.review_comments(number, review.id)
    assert (comment.path, comment.line, comment.body) == ("a.txt", 1, "Use 3")
    reply_id = await repo.reply_to_review_comment(number, comment.id, "Done")
    assert gh.state.review_comments[reply_id]["in_reply_to_id"] == comment.id
    assert (
        await _status_of(
            rest.pulls.async_create_review("octo", "widgets", number, data={"event": "COMMENT"})
        )
        == 422
    )  # a comment review needs a body
    with pytest.raises(RequestFailed) as missing:
        await repo.reply_to_review_comment(number, 999999, "Done")
    assert missing.value.response.status_code == 404
    _, reader = await _repo(gh, app, installation, HANDLER)
    with pytest.raises(RequestFailed) as refused:
        await reader.reply_to_review_comment(number, comment.id, "Done")
    assert refused.value.response.status_code == 403
    person = gh.add_review(WIDGETS, number, "alice", "changes_requested", "x", [("a.txt", 1, "y")])
    (theirs,) = await repo.review_comments(number, person["id"])
    assert theirs.user == "alice" and theirs.body == "y"


@pytest.mark.anyio
async def test_malformed_ids_bodies_and_jwts_are_refused_like_github(gh: GitHubStandIn) -> None:
    app, installation = _setup(gh)
    gh.create_issue(WIDGETS, "x")
    token = (await GitHubApp(_settings(gh, app)).installation_token(installation.id)).token
    headers = {"Authorization": f"token {token}"}
    base = f"{gh.url}/repos/{WIDGETS}"
    for path in (
        "issues/abc",
        "issues/comments/abc",
        "issues/comments/abc/reactions",
        "pulls/abc",
        "pulls/abc/reviews",
        "pulls/comments/abc",
        "check-runs/abc",
        "check-suites/abc",
        "check-suites/abc/check-runs",
        "actions/runs/abc",
        "actions/runs/abc/jobs",
        "actions/jobs/abc",
        "actions/jobs/abc/logs",
        "deployments/abc",
        "deployments/abc/statuses",
        "deployments/1/statuses/abc",
        "issues/-1",
        "pulls/1e3",
    ):
        answer = httpx.get(f"{base}/{path}", headers=headers)
        assert answer.status_code == 404, path
        assert answer.json()["message"] == "Not Found", path
    paged = httpx.get(f"{base}/issues/1/comments?per_page=abc&page=-2", headers=headers)
    assert paged.status_code == 200 and paged.json() == []
    not_an_object = httpx.post(f"{base}/issues/1/comments", headers=headers, json=["body"])
    assert not_an_object.status_code == 422
    bad_ref = httpx.get(f"{base}/commits/--help/status", headers=headers)
    assert bad_ref.status_code == 422
    garbage_basic = httpx.get(base, headers={"Authorization": "Basic %%%"})
    assert garbage_basic.status_code == 401
    now = int(time.time())
    for claims in (
        {"iss": str(app.id), "iat": now - 30},  # no exp
        {"iss": str(app.id), "exp": now + 300},  # no iat
        {"iss": "not-an-id", "iat": now - 30, "exp": now + 300},
        {"iss": str(app.id), "iat": "soon", "exp": now + 300},
    ):
        signed = jwt.encode(claims, app.private_key_pem, algorithm="RS256")
        refused = httpx.get(f"{gh.url}/app", headers={"Authorization": f"Bearer {signed}"})
        assert refused.status_code == 401, claims
    assert gh.errors == []
    assert all(r.status != 500 for r in gh.requests)


def _jwt(app: Any, iat: int, exp: int) -> str:
    return jwt.encode({"iss": str(app.id), "iat": iat, "exp": exp}, app.private_key_pem, "RS256")


def test_app_jwts_issued_in_the_future_or_expired_are_refused(gh: GitHubStandIn) -> None:
    app, _ = _setup(gh)
    now = int(time.time())

    def answer(token: str) -> httpx.Response:
        return httpx.get(f"{gh.url}/app", headers={"Authorization": f"Bearer {token}"})

    assert answer(_jwt(app, now - 60, now + 500)).status_code == 200
    assert answer(_jwt(app, now + 50, now + 500)).status_code == 200  # within the clock drift
    future = answer(_jwt(app, now + 300, now + 600))
    assert future.status_code == 401 and "'Issued at' claim ('iat')" in future.json()["message"]
    expired = answer(_jwt(app, now - 700, now - 120))
    assert expired.status_code == 401
    assert "'Expiration time' claim ('exp') must be" in expired.json()["message"]


def test_each_route_needs_its_permission(gh: GitHubStandIn) -> None:
    app, installation = _setup(gh, {**PUSH, "statuses": "write", "deployments": "write"})
    issue = gh.create_issue(WIDGETS, "x")
    comment = gh.create_comment(WIDGETS, issue["number"], "hello", "alice")
    sha = gh.commit(WIDGETS, "feature", {"a.txt": "1\n"}, "first")
    pull = gh.create_pull(WIDGETS, "feature", "A feature", "alice")
    review = gh.add_review(WIDGETS, pull["number"], "alice", "commented", "x", [("a.txt", 1, "y")])
    (review_comment,) = [
        c for c in gh.state.review_comments.values() if c["pull_request_review_id"] == review["id"]
    ]
    suite = gh.create_check_suite(WIDGETS, head_sha=sha, head_branch="feature")
    deployment = gh.create_deployment(WIDGETS, ref="feature", sha=sha)
    shipmate = GitHubApp(_settings(gh, app))

    def call(permissions: dict[str, str], method: str, path: str, body: Any = None) -> int:
        token = asyncio.run(
            shipmate.installation_token(installation.id, permissions=permissions)
        ).token
        return httpx.request(
            method,
            f"{gh.url}/repos/{WIDGETS}/{path}",
            headers={"Authorization": f"token {token}"},
            json=body,
        ).status_code

    n, p = issue["number"], pull["number"]
    cases: list[tuple[dict[str, str], str, str, Any]] = [
        ({"statuses": "write"}, "POST", f"statuses/{sha}", {"state": "success"}),
        ({"statuses": "read"}, "GET", f"commits/{sha}/status", None),
        ({"issues": "write"}, "POST", f"issues/{n}/reactions", {"content": "eyes"}),
        (
            {"issues": "write"},
            "POST",
            f"issues/comments/{comment['id']}/reactions",
            {"content": "+1"},
        ),
        ({"pull_requests": "write"}, "POST", f"issues/{p}/reactions", {"content": "eyes"}),
        (
            {"pull_requests": "write"},
            "POST",
            f"pulls/{p}/comments/{review_comment['id']}/replies",
            {"body": "ok"},
        ),
        ({"checks": "read"}, "GET", f"commits/{sha}/check-runs", None),
        ({"checks": "read"}, "GET", f"check-suites/{suite['id']}/check-runs", None),
        ({"deployments": "read"}, "GET", "deployments", None),
        ({"deployments": "read"}, "GET", f"deployments/{deployment['id']}/statuses", None),
        ({"deployments": "write"}, "POST", "deployments", {"ref": "main"}),
        ({"pull_requests": "read"}, "GET", f"pulls/{p}", None),
        ({"pull_requests": "read"}, "GET", f"commits/{sha}/pulls", None),
        ({"issues": "read"}, "GET", f"issues/{n}", None),
        ({"issues": "read"}, "GET", f"issues/{n}/comments", None),
        ({"actions": "read"}, "GET", "actions/runs", None),
    ]
    for granted, method, path, body in cases:
        assert call({"contents": "read"}, method, path, body) == 403, (method, path)
        assert call(granted, method, path, body) in (200, 201), (method, path)
    # On a pull request, issue routes accept either permission; on an issue only `issues`.
    assert call({"pull_requests": "read"}, "GET", f"issues/{p}", None) == 200
    assert call({"pull_requests": "read"}, "GET", f"issues/{n}", None) == 403
    # Write routes need write, not read.
    assert call({"statuses": "read"}, "POST", f"statuses/{sha}", {"state": "success"}) == 403
    assert (
        call({"pull_requests": "read"}, "POST", f"pulls/{p}/reviews", {"event": "APPROVE"}) == 403
    )


@pytest.mark.anyio
async def test_injected_faults_of_every_kind(gh: GitHubStandIn) -> None:
    app, installation = _setup(gh)
    gh.create_issue(WIDGETS, "x")
    route = "POST /repos/{owner}/{repo}/issues/{n}/comments"
    with pytest.raises(ValueError, match="unknown fault kind 'teapot'"):
        gh.fail(route, "teapot")
    with pytest.raises(ValueError, match="5xx"):
        gh.fail(route, "server_error", status=404)
    with pytest.raises(ValueError, match="5xx"):
        gh.fail(route, "rate_limit", status=503)
    token = (await GitHubApp(_settings(gh, app)).installation_token(installation.id)).token
    headers = {"Authorization": f"token {token}"}

    def post() -> httpx.Response:
        return httpx.post(
            f"{gh.url}/repos/{WIDGETS}/issues/1/comments", headers=headers, json={"body": "x"}
        )

    gh.fail(route, "rate_limit_429", seconds=30)
    primary = post()
    assert primary.status_code == 429 and primary.headers["x-ratelimit-remaining"] == "0"
    assert 28 <= int(primary.headers["x-ratelimit-reset"]) - time.time() <= 31
    gh.fail(route, "secondary_limit_429", seconds=7)
    secondary = post()
    assert secondary.status_code == 429 and secondary.headers["retry-after"] == "7"
    assert "secondary rate limit" in secondary.json()["message"]
    gh.fail(route, "secondary_limit", seconds=2)
    assert post().status_code == 403
    gh.fail(route, "server_error", status=503)
    assert post().status_code == 503
    gh.fail(route, "server_error")
    assert post().status_code == 502
    gh.fail(route, "expired_token")
    assert post().status_code == 401
    assert post().status_code == 201  # every fault was used up
    gh.fail("GET /repos/{owner}/{repo}", "slow", seconds=0.3)
    started = time.monotonic()
    slow = httpx.get(f"{gh.url}/repos/{WIDGETS}", headers=headers)
    assert slow.status_code == 200 and time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert httpx.get(f"{gh.url}/repos/{WIDGETS}", headers=headers).status_code == 200
    assert time.monotonic() - started < 0.3
    _, repo = await _repo(gh, app, installation, PUSH)  # waits capped at 0.05 s
    gh.fail(route, "secondary_limit_429", seconds=1)
    gh.fail(route, "rate_limit_429", seconds=1)
    await repo.comment(1, "through the retries")
    assert [r.status for r in gh.requests if r.method == "POST"][-3:] == [429, 429, 201]


async def _use_demo(printed: dict[str, str]) -> None:
    settings = Settings.load(
        app_id=int(printed["SHIPMATE_APP_ID"]),
        private_key_path=Path(printed["SHIPMATE_PRIVATE_KEY_PATH"]),
        github_api_url=printed["SHIPMATE_GITHUB_API_URL"],
    )
    client = await GitHubApp(settings).installation_client(
        int(printed["INSTALLATION_ID"]), repository=WIDGETS, permissions=PUSH
    )
    repo = RepoClient(client, WIDGETS)
    assert "return a - b" in (await repo.file_text("calc.py", "main") or "")
    assert await repo.permission("alice") == "maintain"
    assert await repo.comment(1, "on it") > 0


def test_runs_as_a_module_with_a_demo_installation(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "standins.github", "--port", str(port), "--root", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed = dict(process.stdout.readline().strip().split("=", 1) for _ in range(6))
        assert printed["SHIPMATE_GITHUB_API_URL"] == f"http://127.0.0.1:{port}"
        asyncio.run(_use_demo(printed))
        clone = _git("clone", "-q", printed["CLONE_URL"], str(tmp_path / "anon"))
        assert clone.returncode != 0  # private, as the demo repository is
    finally:
        process.terminate()
        process.wait(10)


def test_emitter_field_helpers_signatures_and_missing_fixtures(gh: GitHubStandIn) -> None:
    _setup(gh)
    headers, body = gh.delivery(
        "pull_request",
        "opened",
        {"pull_request": {"title": "raw overrides win"}, "sender": {"type": "Bot"}},
        secret="s3cret",
        repo=WIDGETS,
        sender="alice",
        pull=7,
        head_sha="a" * 40,
        installation_id=99,
    )
    payload = json.loads(body)
    repository = payload["repository"]
    assert (repository["full_name"], repository["name"], repository["owner"]["login"]) == (
        WIDGETS,
        "widgets",
        "octo",
    )
    assert repository["id"] == gh.state.repos[WIDGETS].id
    assert payload["sender"]["login"] == "alice" and payload["sender"]["type"] == "Bot"
    assert payload["number"] == 7 and payload["pull_request"]["number"] == 7
    assert payload["pull_request"]["head"]["sha"] == "a" * 40
    assert payload["pull_request"]["title"] == "raw overrides win"
    assert payload["installation"]["id"] == 99
    assert headers["X-GitHub-Hook-Installation-Target-ID"] == "99"
    sha1 = hmac.new(b"s3cret", body, hashlib.sha1).hexdigest()
    sha256 = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature"] == f"sha1={sha1}"
    assert headers["X-Hub-Signature-256"] == f"sha256={sha256}"
    _, body = gh.delivery("issue_comment", "created", secret="s", pull=3, repo="octo/x")
    comment = json.loads(body)
    assert comment["issue"]["number"] == 3 and comment["repository"]["full_name"] == "octo/x"
    _, body = gh.delivery("check_run", "completed", secret="s", head_sha="b" * 40, pull=5)
    check_run = json.loads(body)["check_run"]
    assert check_run["head_sha"] == check_run["check_suite"]["head_sha"] == "b" * 40
    assert [p["number"] for p in check_run["pull_requests"]] == [5]
    _, body = gh.delivery("workflow_run", "completed", secret="s", head_sha="c" * 40)
    assert json.loads(body)["workflow_run"]["head_sha"] == "c" * 40
    _, body = gh.delivery("deployment_status", None, secret="s", head_sha="d" * 40)
    assert json.loads(body)["deployment"]["sha"] == "d" * 40
    with pytest.raises(ValueError, match="no recorded pull_request payload for action 'exploded'"):
        gh.delivery("pull_request", "exploded", secret="s")
    with pytest.raises(ValueError, match=r"recorded actions: .*opened"):
        gh.delivery("pull_request", "exploded", secret="s")
    with pytest.raises(ValueError, match="no recorded payloads for event 'pull_requests'"):
        gh.delivery("pull_requests", "opened", secret="s")
    with pytest.raises(ValueError, match=r"no recorded ping payload 'nope\.json'"):
        gh.delivery("ping", None, secret="s", fixture="nope.json")


@pytest.mark.anyio
async def test_rate_limit_remaining_counts_down_per_token(gh: GitHubStandIn) -> None:
    app, installation = _setup(gh)
    shipmate = GitHubApp(_settings(gh, app))
    first = (await shipmate.installation_token(installation.id, permissions=HANDLER)).token
    second = (await shipmate.installation_token(installation.id, permissions=PUSH)).token

    def remaining(token: str) -> int:
        answer = httpx.get(f"{gh.url}/repos/{WIDGETS}", headers={"Authorization": f"token {token}"})
        assert int(answer.headers["x-ratelimit-used"]) + int(
            answer.headers["x-ratelimit-remaining"]
        ) == int(answer.headers["x-ratelimit-limit"])
        return int(answer.headers["x-ratelimit-remaining"])

    assert [remaining(first) for _ in range(3)] == [4999, 4998, 4997]
    assert remaining(second) == 4999
    assert remaining(first) == 4996


def _links(answer: httpx.Response) -> dict[str, str]:
    found = re.findall(r'<([^>]+)>; rel="(\w+)"', answer.headers.get("link", ""))
    return {rel: parse_qs(urlsplit(url).query)["page"][0] for url, rel in found}


@pytest.mark.anyio
async def test_link_pagination_next_last_prev_first(gh: GitHubStandIn) -> None:
    app, installation = _setup(gh)
    gh.create_issue(WIDGETS, "x")
    for i in range(5):
        gh.create_comment(WIDGETS, 1, f"comment {i}")
    token = (await GitHubApp(_settings(gh, app)).installation_token(installation.id)).token
    headers = {"Authorization": f"token {token}"}

    def page(n: int) -> httpx.Response:
        return httpx.get(
            f"{gh.url}/repos/{WIDGETS}/issues/1/comments?per_page=2&page={n}", headers=headers
        )

    first, middle, last = page(1), page(2), page(3)
    assert _links(first) == {"next": "2", "last": "3"}
    assert _links(middle) == {"next": "3", "last": "3", "prev": "1", "first": "1"}
    assert _links(last) == {"prev": "2", "first": "1"}
    bodies = [c["body"] for p in (first, middle, last) for c in p.json()]
    assert bodies == [f"comment {i}" for i in range(5)]
    assert "per_page=2" in middle.headers["link"]
    assert page(4).json() == [] and _links(page(4))["prev"] == "3"
