"""The client is where outbound redaction happens, once: every write that sends text for people
to read (comments, pull requests, review replies, check runs, commit messages) arrives at the
GitHub stand-in, over a real socket, without the secrets the client knows or the scanner finds,
with its mentions pinging nobody and its links only to allowed hosts; a text already redacted
arrives as it was (`outbound` is idempotent: tests/test_security.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from bot.config import Settings
from bot.github.client import (
    HANDLER,
    PUSH,
    GitHubApp,
    Outbound,
    RepoClient,
    RetryPolicy,
    outbound_for,
)
from bot.github.git_data import GitDatabase
from bot.github.replies import Replies, reply_key
from bot.jobs.sql import SQLQueue
from bot.triggers.context import Context
from standins.github import GitHubStandIn
from tests.fakes import store_at

WIDGETS = "octo/widgets"
# A token the scanner knows by its shape, and one it cannot: known only to the client.
SCANNED = "ghp_" + "Zq7RwX2mKp9LvT4nBy8HcJ3dFs6GaE1uYo5i"
RUN_TOKEN = "run-token-5f1c9e2ab7d3"
PLANTED = (
    f"The log said {SCANNED} and {RUN_TOKEN}; cc @someone, "
    "see [the log](https://evil.example/log) or https://github.com/octo/widgets/actions"
)


def assert_outbound(text: str) -> None:
    """`text` is PLANTED as outbound redaction leaves it."""
    assert SCANNED not in text and RUN_TOKEN not in text
    assert "[REDACTED:github-token]" in text and "[REDACTED]" in text
    assert "@someone" not in text and "@\u200bsomeone" in text
    assert "](https://evil.example" not in text and "`https://evil.example/log`" in text
    assert "https://github.com/octo/widgets/actions" in text  # GitHub's links stay clickable


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(tmp_path / "gh") as standin:
        standin.create_repo(WIDGETS, {"calc.py": "def add(a, b):\n    return a - b\n"})
        yield standin
    assert standin.refused == []  # nothing sent that GitHub's description refuses


def _installed(gh: GitHubStandIn, **extra: Any) -> tuple[Settings, int]:
    """Shipmate's settings, and the installation on WIDGETS it acts for."""
    app = gh.create_app()
    settings = Settings.load(
        app_id=app.id, private_key=app.private_key_pem, github_api_url=gh.url, **extra
    )
    return settings, gh.install(app, "octo", [WIDGETS], dict(PUSH)).id


async def _client(gh: GitHubStandIn, outbound: Outbound | None = None) -> RepoClient:
    settings, installation_id = _installed(gh)
    github = await GitHubApp(settings).installation_client(
        installation_id, repository=WIDGETS, permissions=PUSH
    )
    return RepoClient(github, WIDGETS, RetryPolicy(max_wait=0.05, base=0.01), outbound=outbound)


def _run_outbound() -> Outbound:
    return Outbound([RUN_TOKEN])


def _sent(gh: GitHubStandIn, method: str, suffix: str) -> list[Any]:
    """The bodies GitHub received for `method` on paths ending with `suffix`."""
    return [r.body for r in gh.requests if r.method == method and r.path.endswith(suffix)]


@pytest.mark.anyio
async def test_comments_created_and_edited_arrive_redacted(gh: GitHubStandIn) -> None:
    issue = gh.create_issue(WIDGETS, "CI fails", "see the log")
    repo = await _client(gh, _run_outbound())
    comment_id = await repo.comment(issue["number"], PLANTED)
    (stored,) = gh.comments_on(WIDGETS, issue["number"])
    assert_outbound(stored["body"])
    await repo.edit_comment(comment_id, f"Edited: {PLANTED}")
    assert stored["body"].startswith("Edited: ")
    assert_outbound(gh.state.comments[comment_id]["body"])


@pytest.mark.anyio
async def test_a_delivery_s_comment_keeps_its_key_after_redaction(gh: GitHubStandIn) -> None:
    issue = gh.create_issue(WIDGETS, "CI fails")
    repo = await _client(gh, _run_outbound())
    repo.replies = Replies("delivery-9")
    await repo.comment(issue["number"], PLANTED)
    (stored,) = gh.comments_on(WIDGETS, issue["number"])
    assert stored["body"].endswith(reply_key("delivery-9", 1))
    assert_outbound(stored["body"])


@pytest.mark.anyio
async def test_pull_request_title_and_body_arrive_redacted(gh: GitHubStandIn) -> None:
    gh.commit(WIDGETS, "shipmate/1-fix", {"calc.py": "def add(a, b):\n    return a + b\n"})
    repo = await _client(gh, _run_outbound())
    pull = await repo.create_pull(
        head="shipmate/1-fix", base="main", title=f"Fix @someone {RUN_TOKEN}", body=PLANTED
    )
    stored = gh.state.pulls[(WIDGETS, pull.number)]
    assert stored["title"] == "Fix @\u200bsomeone [REDACTED]"
    assert_outbound(stored["body"])
    await repo.update_pull(pull.number, title=f"Now {SCANNED}", body=f"Again: {PLANTED}")
    assert stored["title"] == "Now [REDACTED:github-token]"
    assert_outbound(stored["body"])
    await repo.update_pull(pull.number, body="Only the body")
    assert stored["title"] == "Now [REDACTED:github-token]"  # a title not given is not sent
    assert _sent(gh, "PATCH", f"/pulls/{pull.number}")[-1] == {"body": "Only the body"}


@pytest.mark.anyio
async def test_a_reply_to_a_review_comment_arrives_redacted(gh: GitHubStandIn) -> None:
    gh.commit(WIDGETS, "shipmate/1-fix", {"calc.py": "def add(a, b):\n    return a + b\n"})
    pull = gh.create_pull(WIDGETS, "shipmate/1-fix", "Fix add()", "shipmate[bot]")
    gh.add_review(WIDGETS, pull["number"], "alice", "changes_requested", "", [("calc.py", 2, "?")])
    (review_comment,) = gh.state.review_comments.values()
    repo = await _client(gh, _run_outbound())
    reply_id = await repo.reply_to_review_comment(pull["number"], review_comment["id"], PLANTED)
    assert_outbound(gh.state.review_comments[reply_id]["body"])


@pytest.mark.anyio
async def test_check_run_texts_arrive_redacted_and_button_identifiers_as_sent(
    gh: GitHubStandIn,
) -> None:
    sha = gh.branch_sha(WIDGETS, "main") or ""
    repo = await _client(gh, _run_outbound())
    button = {"label": "Ask @someone", "description": "Ping @someone", "identifier": "@someone"}
    run = await repo.create_check_run(
        name=f"CI {RUN_TOKEN}",
        head_sha=sha,
        title=f"Failed: {SCANNED}",
        summary=PLANTED,
        actions=[button],
    )
    stored = gh.state.check_runs[run.id]
    assert stored["name"] == "CI [REDACTED]"
    assert stored["output"]["title"] == "Failed: [REDACTED:github-token]"
    assert_outbound(stored["output"]["summary"])
    assert stored["_actions"] == [
        {
            "label": "Ask @\u200bsomeone",
            "description": "Ping @\u200bsomeone",
            "identifier": "@someone",
        }
    ]
    await repo.update_check_run(run.id, conclusion="failure", title=RUN_TOKEN, summary=PLANTED)
    assert stored["output"]["title"] == "[REDACTED]"
    assert_outbound(stored["output"]["summary"])


@pytest.mark.anyio
async def test_a_commit_message_arrives_redacted(gh: GitHubStandIn) -> None:
    bare = gh.state.repos[WIDGETS].path
    tree = subprocess.check_output(["git", "rev-parse", "main^{tree}"], cwd=bare, text=True)
    base = gh.branch_sha(WIDGETS, "main") or ""
    database = GitDatabase(await _client(gh, _run_outbound()))
    commit = await database.create_commit(f"Fix add()\n\n{PLANTED}", tree.strip(), [base])
    message = subprocess.check_output(["git", "log", "-1", "--format=%B", commit.sha], cwd=bare)
    assert message.decode().startswith("Fix add()\n\n")
    assert_outbound(message.decode())


@pytest.mark.anyio
async def test_a_secret_the_run_learns_later_is_redacted_from_then_on(gh: GitHubStandIn) -> None:
    issue = gh.create_issue(WIDGETS, "x")
    clean = _run_outbound()
    repo = await _client(gh, clean)
    later = "granted-secret-value-42"
    await repo.comment(issue["number"], f"before {later}")
    clean.add(later)
    await repo.comment(issue["number"], f"after {later}")
    bodies = [c["body"] for c in gh.comments_on(WIDGETS, issue["number"])]
    assert bodies == [f"before {later}", "after [REDACTED]"]


@pytest.mark.anyio
async def test_a_client_given_no_outbound_still_masks_scanned_secrets_and_mentions(
    gh: GitHubStandIn,
) -> None:
    issue = gh.create_issue(WIDGETS, "x")
    repo = await _client(gh)
    await repo.comment(issue["number"], f"{SCANNED} @someone https://evil.example/x")
    (stored,) = gh.comments_on(WIDGETS, issue["number"])
    assert stored["body"] == "[REDACTED:github-token] @\u200bsomeone `https://evil.example/x`"


@pytest.mark.anyio
async def test_a_text_already_redacted_arrives_unchanged(gh: GitHubStandIn) -> None:
    issue = gh.create_issue(WIDGETS, "x")
    clean = _run_outbound()
    repo = await _client(gh, clean)
    once = clean(PLANTED)
    await repo.comment(issue["number"], once)
    (stored,) = gh.comments_on(WIDGETS, issue["number"])
    assert stored["body"] == once


@pytest.mark.anyio
async def test_a_handler_s_client_knows_the_operator_s_secrets(
    gh: GitHubStandIn, tmp_path: Path
) -> None:
    webhook_secret = "operator-webhook-secret-81f0"
    settings, installation_id = _installed(
        gh, webhook_secret=webhook_secret, public_url="https://ship.example"
    )
    app = GitHubApp(settings)

    async def clients(installation_id: int, repository: str | None, permissions: Any = None) -> Any:
        return await app.installation_client(
            installation_id, repository=repository, permissions=permissions or HANDLER
        )

    store = store_at(tmp_path)
    context = Context(
        event="issue_comment",
        action="created",
        delivery_id="delivery-1",
        payload={},
        installation_id=installation_id,
        repository=WIDGETS,
        log=structlog.get_logger(),
        settings=settings,
        store=store,
        queue=SQLQueue(store),
        client_factory=clients,
    )
    issue = gh.create_issue(WIDGETS, "x")
    repo = await context.repo()
    assert repo.outbound is context.outbound
    text = (
        f"{webhook_secret} [run](https://ship.example/dashboard/runs/1) [x](https://evil.example)"
    )
    await repo.comment(issue["number"], text)
    (stored,) = gh.comments_on(WIDGETS, issue["number"])
    assert stored["body"].startswith(
        "[REDACTED] [run](https://ship.example/dashboard/runs/1) x (`https://evil.example`)"
    )
    store.dispose()


def test_the_operator_s_outbound_knows_its_secrets_and_its_public_host() -> None:
    settings = Settings.load(
        webhook_secret="operator-webhook-secret-81f0", public_url="https://s.example"
    )
    clean = outbound_for(settings)
    assert "operator-webhook-secret-81f0" in clean.known
    assert clean.link_hosts == ("github.com", "s.example")
    assert outbound_for(Settings.load()).link_hosts == ("github.com",)
    enterprise = Settings.load(github_api_url="https://ghe.example.com/api/v3")
    assert outbound_for(enterprise).link_hosts == ("github.com", "ghe.example.com")


def test_ghe_com_pull_request_links_stay_clickable() -> None:
    """GitHub Enterprise Cloud with data residency: the API is api.<sub>.ghe.com and the web
    pages (a pull request's html_url) are <sub>.ghe.com, so both are allowed."""
    clean = outbound_for(Settings.load(github_api_url="https://api.acme.ghe.com"))
    assert clean.link_hosts == ("github.com", "api.acme.ghe.com", "acme.ghe.com")
    text = "There is already a pull request for this: https://acme.ghe.com/o/r/pull/7."
    assert clean(text) == text
    assert "`https://ghe.com/x`" in clean("and https://ghe.com/x")


def test_the_client_knows_the_secrets_the_logs_know(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One source for both redactors: the model's credentials (a gateway's key through
    ANTHROPIC_BASE_URL has no shape the scanner knows), the operator's declared secrets and
    the admin token are redacted from what is posted as they are from the logs."""
    from bot.logs import settings_secrets

    declared = tmp_path / "secrets.yml"
    declared.write_text(
        "secrets:\n  NPM_TOKEN:\n    env: CI_NPM\n    hosts: [registry.npmjs.org]\n"
        "    repositories: ['octo/*']\n"
    )
    monkeypatch.setenv("ANTHROPIC_API_KEY", "gateway-key-7c1d2e9f4a")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "gateway-token-0b8e3a5c71")
    monkeypatch.setenv("CI_NPM", "npm-value-4e2a9c7b15")
    monkeypatch.setenv("SHIPMATE_SECRETS_FILE", str(declared))
    settings = Settings.load(admin_token="admin-token-6d3f0a9e2c")
    values = ("gateway-key-7c1d2e9f4a", "gateway-token-0b8e3a5c71", "npm-value-4e2a9c7b15")
    held = settings_secrets(settings)
    assert set(values) | {"admin-token-6d3f0a9e2c"} <= set(held)
    clean = outbound_for(settings)
    assert set(clean.known) == set(held)
    posted = clean("keys: " + " ".join(values) + " admin-token-6d3f0a9e2c")
    assert posted == "keys: " + " ".join(["[REDACTED]"] * 4)


def test_the_model_s_credentials_are_named_once_for_the_redactors() -> None:
    from bot.agent.model import CREDENTIAL_VARIABLES
    from bot.config.names import MODEL_CREDENTIALS

    assert MODEL_CREDENTIALS == CREDENTIAL_VARIABLES
