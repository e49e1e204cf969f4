"""handlers/ledger.py on its own: every recorded payload of the events it records parses into its
typed models (octokit's recorded webhooks, MIT), and the cases tests/test_ledger.py's whole change
does not reach: a CI app that reports suites only, Shipmate's own check, a bot's comment, a
payload without what the ledger reads."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pydantic
import pytest

from bot.db.store import Store
from bot.triggers.events import (
    CheckRun,
    CheckSuite,
    IssueComment,
    PullRequest,
    PullRequestReview,
    PullRequestReviewComment,
    WorkflowJob,
)
from tests.conftest import WEBHOOK_FIXTURES
from tests.test_ledger import ALICE, BOT, BRANCH, REPO, deliver, fixture, ours
from tests.test_ledger import store as store

MODELS: dict[str, type[pydantic.BaseModel]] = {
    "workflow_job": WorkflowJob,
    "check_run": CheckRun,
    "check_suite": CheckSuite,
    "pull_request": PullRequest,
    "pull_request_review": PullRequestReview,
    "pull_request_review_comment": PullRequestReviewComment,
    "issue_comment": IssueComment,
}


@pytest.mark.parametrize(
    "path",
    sorted(p for event in MODELS for p in (WEBHOOK_FIXTURES / event).glob("*.json")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_every_recorded_payload_of_a_ledger_event_parses(path: Path) -> None:
    model = MODELS[path.parent.name].model_validate(json.loads(path.read_text()))
    assert model.model_dump()  # parsed, with the fields the ledger reads


def _suite(*, runs: int, app: str = "buildkite") -> dict[str, Any]:
    payload = fixture("check_suite", "completed.payload.json")
    suite = payload["check_suite"]
    suite.update(
        head_branch=BRANCH,
        latest_check_runs_count=runs,
        created_at="2026-12-01T10:00:00Z",
        updated_at="2026-12-01T10:05:30Z",
    )
    suite["app"]["slug"] = app
    return payload


@pytest.mark.anyio
async def test_a_ci_app_reporting_suites_only_is_timed_by_the_suite(store: Store) -> None:
    await deliver(store, "check_suite", _suite(runs=0))
    await deliver(store, "check_suite", _suite(runs=3))  # its check runs count instead
    await deliver(store, "check_suite", _suite(runs=0, app="github-actions"))
    (job,) = store.ledger.ci_jobs_for(REPO, BRANCH)
    assert (job["app"], job["name"], job["seconds"]) == ("buildkite", "buildkite", 330.0)


@pytest.mark.anyio
async def test_shipmates_own_check_run_is_no_ci_minute(store: Store) -> None:
    check = fixture("check_run", "completed.payload.json")
    check["check_run"]["app"]["slug"] = "shipmate"
    check["check_run"]["check_suite"]["head_branch"] = BRANCH
    await deliver(store, "check_run", check)
    assert store.ledger.ci_jobs_for(REPO, BRANCH) == []


@pytest.mark.anyio
async def test_bots_and_other_peoples_pull_requests_are_not_review_activity(store: Store) -> None:
    opened = fixture("pull_request", "opened.payload.json")
    opened["pull_request"] = ours(opened["pull_request"])
    await deliver(store, "pull_request", opened)
    theirs = fixture("pull_request", "opened.payload.json")
    theirs["pull_request"].update(number=8, user=ALICE)
    await deliver(store, "pull_request", theirs)
    talk = fixture("issue_comment", "created.payload.json")
    talk["issue"].update(number=7, pull_request={"url": "x"})
    for number, user in enumerate((BOT, {"login": "dependabot[bot]", "type": "User"})):
        bot_talk = copy.deepcopy(talk)
        bot_talk["comment"].update(user=user, id=9000 + number)
        await deliver(store, "issue_comment", bot_talk)
    plain_issue = copy.deepcopy(talk)
    plain_issue["issue"].pop("pull_request")
    plain_issue["comment"]["user"] = ALICE
    await deliver(store, "issue_comment", plain_issue)  # an issue, not a PR
    kinds = [row["kind"] for row in store.ledger.activity_for(REPO, 7)]
    assert kinds == ["opened"] and store.ledger.activity_for(REPO, 8) == []


@pytest.mark.anyio
async def test_a_payload_without_what_the_ledger_reads_fails_by_name(store: Store) -> None:
    job = fixture("workflow_job", "completed.failure.with-organization.payload.json")
    del job["workflow_job"]["id"]
    with pytest.raises(pydantic.ValidationError, match=r"workflow_job\.id"):
        await deliver(store, "workflow_job", job)
    assert store.ledger.ci_jobs_for(REPO, BRANCH) == []
