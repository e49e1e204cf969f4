"""handlers/checks.py with a recording fake of the repository client: a failed check on the head
of a Shipmate pull request becomes one repair run; anything else is left alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.db.store import Store
from bot.github.models import Job, PullRequest
from handlers import checks
from tests.fakes import FakeRepo, context_for, queued_runs, recorded, store_at
from tests.test_handlers_reviews import HEAD, shipmate_pull


def _check_run(conclusion: str, *, app: str = "circleci", head: str = HEAD) -> dict[str, Any]:
    payload = recorded("check_run", "completed.payload.json")
    run = payload["check_run"]
    run.update(conclusion=conclusion, head_sha=head, name="lint", app={"slug": app})
    run["pull_requests"] = [{"number": 9}]
    run["output"] = {"title": "1 error", "summary": "calc.py:3: E999 SyntaxError", "text": None}
    return payload


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return store_at(tmp_path)


@pytest.mark.anyio
async def test_a_failed_check_on_our_head_queues_a_repair_with_its_output(store: Store) -> None:
    repo = FakeRepo(pull_data=shipmate_pull())
    await checks.router.dispatch(context_for(store, "check_run", _check_run("failure"), repo))
    (run,) = queued_runs(store)
    assert run["verb"] == "repair"
    assert run["pr"] == {"number": 9, "head_ref": "shipmate/9-x", "head_sha": HEAD, "reply_to": []}
    assert "E999 SyntaxError" in run["feedback"] and run["feedback_label"] == "CI log of lint"
    assert run["task"].startswith("The check `lint` fails on this pull request.")
    # The same failure again (a redelivery, a second event for it) is not a second repair.
    await checks.router.dispatch(context_for(store, "check_run", _check_run("failure"), repo))
    assert len(queued_runs(store)) == 1


@pytest.mark.anyio
async def test_passing_checks_our_own_actions_and_old_heads_are_ignored(store: Store) -> None:
    repo = FakeRepo(pull_data=shipmate_pull())
    for payload in (
        _check_run("success"),
        _check_run("failure", app="shipmate"),
        _check_run("failure", app="github-actions"),  # its workflow_run covers it
        _check_run("failure", head="0" * 40),  # not the PR's head any more
    ):
        await checks.router.dispatch(context_for(store, "check_run", payload, repo))
    assert queued_runs(store) == []


@pytest.mark.anyio
async def test_a_failed_check_on_someone_elses_pull_request_is_ignored(store: Store) -> None:
    repo = FakeRepo(pull_data=shipmate_pull(login="bob"))
    await checks.router.dispatch(context_for(store, "check_run", _check_run("failure"), repo))
    assert queued_runs(store) == [] and repo.called("comment") == []


@pytest.mark.anyio
async def test_a_failed_workflow_run_reads_the_failed_jobs_logs(store: Store) -> None:
    payload = recorded("workflow_run", "completed.with-pull-requests.payload.json")
    payload["workflow_run"].update(conclusion="failure", head_sha=HEAD, name="CI", id=4242)
    payload["workflow_run"]["pull_requests"] = [{"number": 9}]
    jobs = [
        Job(1, "test", "completed", "failure", ("pytest",)),
        Job(2, "lint", "completed", "success", ()),
    ]
    repo = FakeRepo(
        pull_data=shipmate_pull(),
        workflow_jobs=jobs,
        job_log=lambda job_id: f"log of {job_id}: AssertionError: 2 != 3",
    )
    await checks.router.dispatch(context_for(store, "workflow_run", payload, repo))
    assert repo.called("workflow_jobs") == [(4242,)] and repo.called("job_log") == [(1,)]
    (run,) = queued_runs(store)
    assert "AssertionError: 2 != 3" in run["feedback"] and run["feedback_label"] == "CI log of CI"


@pytest.mark.anyio
async def test_a_failed_status_on_our_branch_queues_a_repair(store: Store) -> None:
    payload = recorded("status", "payload.json")
    payload.update(
        state="failure",
        sha=HEAD,
        context="ci/jenkins",
        description="3 tests failed",
        target_url="https://evil.example/steal",
        branches=[{"name": "shipmate/9-x"}],
    )
    pull = PullRequest(9, "open", False, "shipmate/9-x", HEAD, "octo/widgets", "main", "https://x")
    repo = FakeRepo(pull_data=shipmate_pull(), open_pulls_for_branch=[pull])
    await checks.router.dispatch(context_for(store, "status", payload, repo))
    (run,) = queued_runs(store)
    assert run["feedback"].startswith("3 tests failed")
    assert "evil.example" not in run["feedback"]  # only GitHub's own target URL is named
