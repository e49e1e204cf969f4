"""The difference from a passing run and the re-run of a flaky one, against the GitHub stand-in
over real sockets: the same job's last passing log is found (an earlier attempt, another run on
the same commit, the base branch's last green run), the excerpt prefers what only the failing
log says, and re-running failed jobs needs `actions: write` and makes a new attempt."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from githubkit.exception import RequestFailed

from bot.config import Settings
from bot.github.client import HANDLER, GitHubApp, RepoClient, RetryPolicy, WorkflowRun
from bot.triggers.ci_history import job_history
from bot.triggers.ci_log import excerpt
from bot.triggers.ci_rerun import RERUN_PERMISSIONS
from standins import github_actions
from standins.github import GitHubStandIn

REPO = "octo/widgets"
CORPUS = Path(__file__).parent / "fixtures" / "ci-logs-real"


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(tmp_path / "gh") as standin:
        yield standin
    assert standin.refused == []  # the product sent nothing GitHub's description refuses


async def _client(gh: GitHubStandIn, permissions: Any = HANDLER) -> RepoClient:
    """A client with a token of these permissions (the App is made and installed, with
    `actions: write` granted as app.yml asks, the first time)."""
    if not gh.apps:
        app = gh.create_app("shipmate")
        gh.create_repo(REPO, {"calc.py": "def add(a, b):\n    return a - b\n"})
        gh.install(app, "octo", [REPO], {**HANDLER, "actions": "write"})
    app, installation = next(iter(gh.apps.values())), next(iter(gh.installations.values()))
    settings = Settings.load(app_id=app.id, private_key=app.private_key_pem, github_api_url=gh.url)
    github = await GitHubApp(settings).installation_client(
        installation.id, repository=REPO, permissions=permissions
    )
    return RepoClient(github, REPO, RetryPolicy(max_wait=0.05, base=0.01))


def _run(gh: GitHubStandIn, sha: str, branch: str, conclusion: str, log: str) -> WorkflowRun:
    made = gh.create_workflow_run(
        REPO,
        name="CI",
        head_sha=sha,
        head_branch=branch,
        conclusion=conclusion,
        jobs=[
            {"name": "lint", "conclusion": "success", "log": "clean\n"},
            {"name": "test", "conclusion": conclusion, "log": log},
        ],
    )
    return WorkflowRun.of(made)


def real(name: str) -> str:
    return gzip.decompress((CORPUS / name).read_bytes()).decode()


@pytest.mark.anyio
async def test_the_base_branchs_last_green_run_gives_the_passing_log(gh: GitHubStandIn) -> None:
    repo = await _client(gh)
    main = gh.branch_sha(REPO, "main") or ""
    _run(gh, main, "main", "success", "old green\n")
    green = _run(gh, main, "main", "success", "ok 12 tests\n")
    _run(gh, main, "main", "failure", "a red run on main is no reference\n")
    head = gh.commit(REPO, "shipmate/1-add", {"calc.py": "x\n"}, "try")
    failing = _run(gh, head, "shipmate/1-add", "failure", "E   assert 1 == 2\n")
    history = await job_history(repo, failing, ["test"], "main")
    assert history.passing_log == "== job test ==\nok 12 tests\n"
    assert str(green.id) in history.source and not history.passed_on_same_commit
    # No green run of the workflow on that branch: nothing to compare with.
    assert await job_history(repo, failing, ["test"], "elsewhere") == type(history)()


@pytest.mark.anyio
async def test_a_pass_on_the_same_commit_is_found(gh: GitHubStandIn) -> None:
    repo = await _client(gh)
    head = gh.commit(REPO, "shipmate/1-add", {"calc.py": "x\n"}, "try")
    _run(gh, head, "shipmate/1-add", "success", "all 12 passed\n")
    failing = _run(gh, head, "shipmate/1-add", "failure", "ECONNRESET\n")
    history = await job_history(repo, failing, ["test"], "main")
    assert (
        history.passed_on_same_commit and history.passing_log == "== job test ==\nall 12 passed\n"
    )


@pytest.mark.anyio
async def test_rerunning_failed_jobs_needs_actions_write_and_makes_a_new_attempt(
    gh: GitHubStandIn,
) -> None:
    reader = await _client(gh)
    head = gh.commit(REPO, "shipmate/1-add", {"calc.py": "x\n"}, "try")
    failing = _run(gh, head, "shipmate/1-add", "failure", "Error: read ETIMEDOUT\n")
    with pytest.raises(RequestFailed) as refused:
        await reader.rerun_failed_jobs(failing.id)
    assert refused.value.response.status_code == 403 and gh.state.reruns == []
    writer = await _client(gh, RERUN_PERMISSIONS)
    await writer.rerun_failed_jobs(failing.id)
    again = await reader.workflow_run(failing.id)
    assert gh.state.reruns == [failing.id]
    assert (again.run_attempt, again.status, again.conclusion) == (2, "queued", None)
    # The first attempt's jobs stay readable; the new attempt re-runs only the failed one.
    first = await reader.attempt_jobs(failing.id, 1)
    assert [(j.name, j.conclusion) for j in first] == [("lint", "success"), ("test", "failure")]
    latest = await reader.workflow_jobs(failing.id)
    assert [(j.name, j.conclusion) for j in latest] == [("lint", "success"), ("test", None)]
    # A run that is not finished cannot be re-run again.
    with pytest.raises(RequestFailed):
        await writer.rerun_failed_jobs(failing.id)
    github_actions.finish_attempt(
        gh, failing.id, [{"name": "test", "conclusion": "success", "log": "ok\n"}]
    )
    finished = WorkflowRun.of({**gh.state.workflow_runs[failing.id]})
    history = await job_history(reader, finished, ["test"], "main")
    assert history.passing_log is None  # attempt 1 failed too: no pass to compare with


@pytest.mark.anyio
async def test_the_difference_from_green_keeps_what_only_the_failing_log_says(
    gh: GitHubStandIn,
) -> None:
    """A real breakage (cidiff: a Jenkins Maven build whose surefire reports could not be
    written, `No space left on device`, sixteen lines in the middle of a long test run): with a
    passing run's log fetched through the Actions API, the labelled failure lines are kept;
    without it, not all of them are."""
    name = "cidiff-sorald-445"
    entry = json.loads((CORPUS / "labels.json").read_text())[name]
    repo = await _client(gh)
    main = gh.branch_sha(REPO, "main") or ""
    _run(gh, main, "main", "success", real(entry["passing_log"]))
    head = gh.commit(REPO, "shipmate/1-add", {"calc.py": "x\n"}, "try")
    log = real(f"{name}.log.gz")
    failing = _run(gh, head, "shipmate/1-add", "failure", log)
    history = await job_history(repo, failing, ["test"], "main")
    assert history.passing_log is not None
    passing = history.passing_log.split("\n", 1)[1]
    lines = log.splitlines()
    wanted = [i for a, b in entry["failure_lines"] for i in range(a - 1, b) if lines[i].strip()]
    with_green = set(excerpt(log, passing=passing).kept)
    without = set(excerpt(log).kept)
    assert all(i in with_green for i in wanted)
    assert sum(i in without for i in wanted) < len(wanted)  # the difference is what found them
