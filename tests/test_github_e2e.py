"""bot.github.client end to end through the GitHub stand-in: App JWT -> scoped installation token ->
comment -> check run, with the stand-in's injected rate limits, 5xx and revoked tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from githubkit.exception import RequestFailed

from bot.config import Settings
from bot.github.client import HANDLER, PUSH, GitHubApp, RepoClient, RetryPolicy
from standins.github import GitHubStandIn


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(tmp_path / "gh") as standin:
        yield standin
    assert standin.refused == []  # the product sent nothing GitHub's description refuses


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def _setup(gh: GitHubStandIn, sleeps: Sleeps) -> tuple[GitHubApp, Any]:
    app = gh.create_app(slug="shipmate-e2e")
    gh.create_repo("octo/widgets", {"README.md": "# widgets\n"})
    gh.create_repo("octo/other", {"README.md": "other\n"})
    installation = gh.install(app, "octo", ["octo/widgets", "octo/other"], dict(PUSH))
    settings = Settings.load(app_id=app.id, private_key=app.private_key_pem, github_api_url=gh.url)
    policy = RetryPolicy(attempts=4, max_wait=900, sleep=sleeps)
    return GitHubApp(settings, retry=policy), installation


@pytest.mark.anyio
async def test_jwt_token_comment_and_check_run(gh: GitHubStandIn, sleeps: Sleeps) -> None:
    shipmate, installation = _setup(gh, sleeps)
    issue = gh.create_issue("octo/widgets", "add() is wrong", "It subtracts.")
    assert await shipmate.bot_login() == "shipmate-e2e[bot]"
    client = await shipmate.installation_client(
        installation.id, repository="octo/widgets", permissions=HANDLER
    )
    repo = RepoClient(client, "octo/widgets", shipmate.retry)
    comment_id = await repo.comment(issue["number"], "Working on it")
    await repo.edit_comment(comment_id, "Planning")
    await repo.react_eyes(comment_id)
    head = await repo.branch_sha("main")
    assert head is not None and head == gh.branch_sha("octo/widgets", "main")
    run = await repo.create_check_run(name="Shipmate", head_sha=head, title="Planning")
    done = await repo.update_check_run(
        run.id, conclusion="success", title="Planned", summary="No change"
    )
    assert (done.status, done.conclusion, done.title) == ("completed", "success", "Planned")

    (token,) = gh.tokens.values()
    assert token.repositories == ["octo/widgets"]
    assert token.permissions == dict(HANDLER) and "workflows" not in token.permissions
    (stored,) = gh.state.comments.values()
    assert stored["body"] == "Planning"
    assert gh.state.check_runs[run.id]["conclusion"] == "success"
    assert sleeps.waits == []
    # The token is scoped to octo/widgets: the other repository is out of reach.
    with pytest.raises(RequestFailed) as raised:
        await RepoClient(client, "octo/other", shipmate.retry).default_branch()
    assert raised.value.response.status_code == 404


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["rate_limit", "secondary_limit", "server_error"])
async def test_injected_failures_are_retried(gh: GitHubStandIn, sleeps: Sleeps, kind: str) -> None:
    shipmate, installation = _setup(gh, sleeps)
    issue = gh.create_issue("octo/widgets", "bug", "")
    client = await shipmate.installation_client(
        installation.id, repository="octo/widgets", permissions=HANDLER
    )
    route = "POST /repos/octo/widgets/issues/{n}/comments"
    gh.fail(route, kind, times=2, seconds=30)
    await RepoClient(client, "octo/widgets", shipmate.retry).comment(issue["number"], "hi")
    posts = [r for r in gh.requests if r.method == "POST" and r.path.endswith("/comments")]
    assert (
        [r.status for r in posts] == [403, 403, 201] if kind != "server_error" else [502, 502, 201]
    )
    assert len(sleeps.waits) == 2
    if kind == "secondary_limit":
        assert sleeps.waits == [30, 30]
    elif kind == "rate_limit":
        assert all(29 <= wait <= 31.5 for wait in sleeps.waits)
    else:
        assert sleeps.waits == [1, 2]


@pytest.mark.anyio
async def test_a_revoked_token_is_replaced(gh: GitHubStandIn, sleeps: Sleeps) -> None:
    shipmate, installation = _setup(gh, sleeps)
    issue = gh.create_issue("octo/widgets", "bug", "")
    client = await shipmate.installation_client(
        installation.id, repository="octo/widgets", permissions=HANDLER
    )
    gh.fail("POST /repos/octo/widgets/issues/{n}/comments", "expired_token", times=1)
    await RepoClient(client, "octo/widgets", shipmate.retry).comment(issue["number"], "hi")
    assert len(gh.tokens) == 2 and sleeps.waits == []


@pytest.mark.anyio
async def test_job_log_follows_the_redirect(gh: GitHubStandIn, sleeps: Sleeps) -> None:
    shipmate, installation = _setup(gh, sleeps)
    job_id = gh.add_job_log("octo/widgets", "FAILED test_add - assert 1 == 2\n")
    client = await shipmate.installation_client(
        installation.id, repository="octo/widgets", permissions=HANDLER
    )
    repo = RepoClient(client, "octo/widgets", shipmate.retry)
    assert await repo.job_log(job_id) == "FAILED test_add - assert 1 == 2\n"
