"""A `run` job killed part-way and run again (its worker SIGKILLed, or its lease run out) ends
with one result on GitHub: one sticky comment, one `Shipmate` check run per commit (completed),
one branch, one pull request; and its cost in the ledger once. Each test runs a real run (the
GitHub and Anthropic stand-ins over sockets, bubblewrap), kills it just after one step, and runs
the same job again (bot/runs/attempts.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest

from bot.db.store import Store
from bot.github.checks import CheckCalls
from bot.github.git_data import GitDatabase
from bot.github.pulls import PullCalls
from bot.runs import finish
from bot.runs.attempts import INTERRUPTED, run_marker
from bot.runs.context import Sticky
from tests.kills import killed_after
from tests.test_e2e_github import (
    FIXED_SCRIPT,
    REPO,
    World,
    _failing_workflow,
    _fix_script,
    _shipmate_pr,
)
from tests.test_e2e_github import world as world

BOT = "shipmate[bot]"
Kill = Callable[[], AbstractContextManager[None]]


def _run_again(world: World) -> None:
    """What a SIGKILLed worker leaves: the run job waits again (its lease ran out)."""
    with world.store.engine.begin() as conn:
        waiting = conn.exec_driver_sql(
            "UPDATE jobs SET state = 'waiting', run_at = 0 WHERE kind = 'run'"
            " AND state IN ('waiting', 'running')"
        ).rowcount
    assert waiting == 1


def _git(world: World, *args: str) -> str:
    path = world.gh.state.repos[REPO].path
    return subprocess.run(
        ["git", *args], cwd=path, capture_output=True, text=True, check=True
    ).stdout


def _stickies(world: World, number: int) -> list[dict[str, Any]]:
    return [
        c
        for c in world.gh.comments_on(REPO, number)
        if c["user"]["login"] == BOT and "<!-- shipmate:task:" in c["body"]
    ]


def _our_checks(world: World) -> list[dict[str, Any]]:
    return [
        r
        for r in world.gh.state.check_runs.values()
        if r["name"] == "Shipmate" and r["app"]["slug"] == "shipmate"
    ]


def _branches(world: World) -> list[str]:
    return _git(world, "for-each-ref", "--format=%(refname:short)", "refs/heads/shipmate/").split()


def _counted_once(store: Store, number: int) -> list[dict[str, Any]]:
    """The task's runs, each attempt's cost its own model calls', and the ledger's sums of
    them; each attempt's calls are counted once."""
    runs = store.runs_for(REPO, number)
    calls = [c for r in runs for c in store.model_calls(str(r["id"]))]
    spent = sum(float(c["cost_usd"]) for c in calls)
    for run in runs:
        own = sum(float(c["cost_usd"]) for c in store.model_calls(str(run["id"])))
        assert run["cost_usd"] == pytest.approx(own)
    assert sum(float(r["cost_usd"]) for r in runs) == pytest.approx(spent)
    assert store.ledger.month_spend(repo=REPO) == pytest.approx(spent)
    assert [r["finished_at"] is not None for r in runs] == [True] * len(runs)
    return runs


# Where the first attempt dies, and whether it ran the agent before.
KILLS: dict[str, tuple[Kill, bool]] = {
    "after the run row": (lambda: killed_after(Store, "record_run"), False),
    "after the sticky comment": (lambda: killed_after(Sticky, "show"), False),
    "after the live check run": (lambda: killed_after(CheckCalls, "create_check_run"), False),
    "after the new branch": (lambda: killed_after(GitDatabase, "create_branch"), True),
    "after the push": (lambda: killed_after(GitDatabase, "move_branch"), True),
    "after the pull request opened": (lambda: killed_after(PullCalls, "create_pull"), True),
    # A fix of an issue creates its check run once its pull request is open.
    "after the check run": (lambda: killed_after(CheckCalls, "create_check_run"), True),
}
FIX_KILLS = [
    "after the run row",
    "after the sticky comment",
    "after the new branch",
    "after the pull request opened",
    "after the check run",
]
REPAIR_KILLS = [
    "after the run row",
    "after the sticky comment",
    "after the live check run",
    "after the push",
]


@pytest.mark.parametrize("where", FIX_KILLS)
def test_a_fix_killed_and_run_again_ends_with_one_of_each(world: World, where: str) -> None:
    kill, ran_the_agent = KILLS[where]
    _fix_script(world.model)
    with kill():
        world.comment("/shipmate fix")
        assert world.work() == 2  # the webhook job, then the run job (which failed)
    if ran_the_agent:
        _fix_script(world.model)
    _run_again(world)
    assert world.work() == 1
    (sticky,) = _stickies(world, 1)
    (pull,) = world.gh.state.pulls.values()
    assert "✅ Done" in sticky["body"] and pull["html_url"] in sticky["body"]
    assert _branches(world) == [pull["head"]["ref"]] and pull["state"] == "open"
    (check,) = _our_checks(world)
    assert check["status"] == "completed" and check["conclusion"] == "success"
    assert check["head_sha"] == pull["head"]["sha"]
    (push,) = world.gh.state.pushes  # the retry kept the commit it had pushed
    assert push["new"] == pull["head"]["sha"]
    runs = _counted_once(world.store, 1)
    assert [r["status"] for r in runs] == [INTERRUPTED, "completed"]
    assert {r["branch"] for r in runs} == {pull["head"]["ref"]}  # the change's ledger has both
    assert world.model.remaining() == 0


@pytest.mark.parametrize("where", REPAIR_KILLS)
def test_a_repair_killed_and_run_again_ends_with_one_of_each(world: World, where: str) -> None:
    """A repair posts its own sticky comment and shows an in-progress check run on the pull
    request's head: the retry edits the one and completes the other, and pushes once."""
    kill, ran_the_agent = KILLS[where]
    pull = _shipmate_pr(world)
    before = pull["head"]["sha"]
    world.model.script(FIXED_SCRIPT)
    with kill():
        _failing_workflow(world, pull)
        world.work()
    if ran_the_agent:
        world.model.script(FIXED_SCRIPT)
    _run_again(world)
    assert world.work() == 1
    (sticky,) = _stickies(world, pull["number"])
    assert "✅ Done" in sticky["body"]
    (push,) = world.gh.state.pushes
    assert push["old"] == before and pull["head"]["sha"] == push["new"]
    assert _branches(world) == ["shipmate/1-add"] and len(world.gh.state.pulls) == 1
    checks = {r["head_sha"]: r for r in _our_checks(world)}
    assert len(checks) == len(_our_checks(world)) == 2  # the old head's live one, the new head's
    assert {r["status"] for r in checks.values()} == {"completed"}
    assert (
        checks[before]["conclusion"] == "neutral" and checks[push["new"]]["conclusion"] == "success"
    )
    runs = _counted_once(world.store, pull["number"])
    assert [r["status"] for r in runs] == [INTERRUPTED, "completed"]


def test_a_retry_after_main_moved_does_not_put_mains_commits_in_the_pull_request(
    world: World,
) -> None:
    """The first attempt pushed its branch (on main's head then) and was killed; a maintainer
    merged something into main before the retry. The retry starts from the first attempt's base
    and builds on its commit: the pull request shows Shipmate's change alone."""
    _fix_script(world.model)
    with killed_after(GitDatabase, "create_branch"):
        world.comment("/shipmate fix")
        assert world.work() == 2
    world.gh.commit(REPO, "main", {"other.txt": "someone else's work\n"}, "unrelated change")
    _fix_script(world.model)
    _run_again(world)
    assert world.work() == 1
    (pull,) = world.gh.state.pulls.values()
    changed = _git(world, "diff", "--name-only", f"main...{pull['head']['sha']}").split()
    assert changed == ["calc.py"], changed


def test_a_run_killed_once_its_record_was_finished_is_not_run_again(world: World) -> None:
    """Killed after the run finished (its record completed, the job not yet marked done): the
    retry ends the job, and neither the agent nor GitHub hears of it again."""
    _fix_script(world.model)
    with killed_after(finish, "record_finish"):
        world.comment("/shipmate fix")
        assert world.work() == 2
    requests = len(world.gh.requests)
    _run_again(world)
    assert world.work() == 1
    assert len(world.gh.requests) == requests  # not even a token minted
    (run,) = world.store.runs_for(REPO, 1)
    assert run["status"] == "completed" and len(world.gh.state.pulls) == 1
    assert world.model.remaining() == 0 and len(_stickies(world, 1)) == 1


def test_what_someone_else_plants_is_not_taken_for_the_runs(world: World) -> None:
    """Before the retry, mallory copies the job's hidden mark into a comment and another App
    creates a `Shipmate` check run with the job's key on the head: the retry posts its own
    sticky comment and check run, and leaves theirs as they were."""
    pull = _shipmate_pr(world)
    world.model.script(FIXED_SCRIPT)
    with killed_after(Store, "record_run"):
        _failing_workflow(world, pull)
        world.work()
    (killed,) = world.store.runs_for(REPO, pull["number"])
    key = str(killed["id"])
    planted = world.gh.create_comment(REPO, pull["number"], f"hi\n{run_marker(key)}", "mallory")
    world.gh.create_check_suite(
        REPO,
        head_sha=pull["head"]["sha"],
        head_branch=pull["head"]["ref"],
        app_slug="mallory-ci",
        check_runs=[{"name": "Shipmate", "external_id": key, "conclusion": "failure"}],
    )
    _run_again(world)
    assert world.work() == 1
    (sticky,) = _stickies(world, pull["number"])
    assert "✅ Done" in sticky["body"] and sticky["id"] != planted["id"]
    theirs = world.gh.state.comments[planted["id"]]
    assert theirs["body"] == f"hi\n{run_marker(key)}"
    (other,) = [r for r in world.gh.state.check_runs.values() if r["app"]["slug"] == "mallory-ci"]
    assert other["conclusion"] == "failure" and other["external_id"] == key
    assert {r["status"] for r in _our_checks(world)} == {"completed"}
    assert len(_our_checks(world)) == 2


def test_a_revision_killed_after_its_replies_answers_each_comment_once(world: World) -> None:
    pull = _shipmate_pr(world)
    review = world.gh.add_review(
        REPO, pull["number"], "alice", "changes_requested", "Fix add()", [("calc.py", 2, "No.")]
    )
    world.model.script(FIXED_SCRIPT)
    with killed_after(PullCalls, "reply_to_review_comment"):
        world.review(review["id"], pull["number"], "Fix add()")
        world.work()
    world.model.script(FIXED_SCRIPT)
    _run_again(world)
    assert world.work() == 1
    replies = [c for c in world.gh.state.review_comments.values() if c.get("in_reply_to_id")]
    (reply,) = replies
    assert reply["user"]["login"] == BOT and len(world.gh.state.pushes) == 1
    assert "✅ Done" in _stickies(world, pull["number"])[0]["body"]
    assert [r["status"] for r in _counted_once(world.store, pull["number"])] == [
        INTERRUPTED,
        "completed",
    ]
