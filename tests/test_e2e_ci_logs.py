"""End to end with real CI logs (tests/fixtures/ci-logs-real/): a failing Actions run on
Shipmate's pull request, delivered to the real server, queued, handled by the worker: a code
failure becomes a repair whose brief carries the log's failure; a network failure becomes one
re-run of the failed jobs, and a repair only when the re-run fails too."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bot.triggers import ci_rerun
from bot.triggers.ci_log import normalize
from standins import github_actions
from standins.anthropic import Turn
from tests.kills import killed_before_the_audit_row
from tests.test_e2e_github import FIXED_SCRIPT, REPO, World, _minted, _shipmate_pr, world

__all__ = ["world"]  # the fixture, imported to be used here

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]
CORPUS = Path(__file__).parent / "fixtures" / "ci-logs-real"
LABELS = json.loads((CORPUS / "labels.json").read_text())


def real(name: str) -> str:
    return gzip.decompress((CORPUS / f"{name}.log.gz").read_bytes()).decode()


def labelled(name: str) -> list[str]:
    lines = normalize(real(name))  # as a reader sees them: no colour codes
    ranges = LABELS[name]["failure_lines"]
    return [lines[i].strip() for a, b in ranges for i in range(a - 1, b) if lines[i].strip()]


def _fail(world: World, pull: dict[str, Any], log: str) -> dict[str, Any]:
    run = world.gh.create_workflow_run(
        REPO,
        name="CI",
        head_sha=pull["head"]["sha"],
        head_branch=pull["head"]["ref"],
        jobs=[{"name": "test", "conclusion": "failure", "log": log}],
    )
    _deliver(world, run)
    return run


def _deliver(world: World, run: dict[str, Any]) -> None:
    sender = {"login": "github-actions[bot]", "type": "Bot"}
    world.emit("workflow_run", "completed", {"workflow_run": run, "sender": sender})


def _watch(world: World) -> list[str]:
    seen: list[str] = []

    def first(request: dict[str, Any]) -> Turn:
        seen.append(request["messages"][0]["content"][0]["text"])
        return FIXED_SCRIPT[0]

    world.model.script([first, *FIXED_SCRIPT[1:]])
    return seen


def test_a_real_test_failure_gets_a_repair_that_sees_it(world: World) -> None:
    name = "logchunks-python-nvbn-thefuck-530361507"  # pytest: Missing rule "shoaib" in README
    pull = _shipmate_pr(world)
    seen = _watch(world)
    _fail(world, pull, real(name))
    world.work()
    assert len(world.gh.state.pushes) == 1 and world.gh.state.reruns == []
    brief = seen[0]
    for line in labelled(name):
        assert line[:200] in brief, line
    assert len(brief) < len(real(name)) / 10  # the log was cut, not pasted


def test_a_real_network_failure_is_rerun_once_then_repaired(world: World) -> None:
    name = "cidiff-spork-441"  # git fetch: the requested URL returned error: 503
    pull = _shipmate_pr(world)
    run = _fail(world, pull, real(name))
    world.work()
    assert world.gh.state.reruns == [run["id"]] and world.gh.state.pushes == []
    (note,) = [c for c in world.gh.comments_on(REPO, pull["number"]) if "re-ran" in c["body"]]
    assert "network or the runner" in note["body"] and "503" in note["body"]
    # The token that re-ran the jobs could do nothing else.
    assert {"metadata": "read", "actions": "write"} in _minted(world)
    # The re-run fails the same way: no second re-run, a repair.
    seen = _watch(world)
    again = github_actions.finish_attempt(
        world.gh, run["id"], [{"name": "test", "conclusion": "failure", "log": real(name)}]
    )
    _deliver(world, again)
    world.work()
    assert world.gh.state.reruns == [run["id"]]
    assert len(seen) == 1 and len(world.gh.state.pushes) == 1
    assert "error: 503" in seen[0]


def _run_again(world: World) -> None:
    """What a worker killed after the job's side effects, before it was marked done, leaves:
    the workflow_run delivery's job waits again and the delivery is not handled."""
    with world.store.engine.begin() as conn:
        (delivery,) = conn.exec_driver_sql(
            "SELECT delivery_id FROM deliveries WHERE event = 'workflow_run'"
        ).scalars()
        conn.exec_driver_sql(
            "UPDATE jobs SET state = 'waiting', run_at = 0 WHERE kind = 'webhook'"
            " AND json_extract(payload, '$.delivery_id') = ?",
            (delivery,),
        )
    world.store.set_delivery_status(delivery, "queued")


def _run_again_without_a_repair(world: World, pull: dict[str, Any], run: dict[str, Any]) -> str:
    """The delivery's job runs again: no repair and no second re-run. The CI comment, which
    lists the run once, linked (GitHub's links stay clickable)."""
    _run_again(world)
    seen = _watch(world)
    assert world.work() == 1  # the webhook job alone: no repair
    assert world.gh.state.reruns == [run["id"]] and seen == [] and world.gh.state.pushes == []
    (note,) = [c for c in world.gh.comments_on(REPO, pull["number"]) if "re-ran" in c["body"]]
    assert note["body"].count(f"[run {run['id']}]({run['html_url']})") == 1
    return str(note["body"])


def test_a_rerun_is_not_repeated_when_its_job_runs_again(world: World) -> None:
    pull = _shipmate_pr(world)
    run = _fail(world, pull, real("cidiff-spork-441"))
    world.work()
    assert "so it was judged" not in _run_again_without_a_repair(world, pull, run)


def test_a_rerun_whose_comment_was_lost_is_said_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    said = ci_rerun._say

    async def killed(*args: Any) -> None:
        raise RuntimeError("killed after the re-run, before the comment")

    monkeypatch.setattr(ci_rerun, "_say", killed)
    pull = _shipmate_pr(world)
    run = _fail(world, pull, real("cidiff-spork-441"))
    world.work()
    assert world.gh.state.reruns == [run["id"]]
    assert not [c for c in world.gh.comments_on(REPO, pull["number"]) if "re-ran" in c["body"]]
    monkeypatch.setattr(ci_rerun, "_say", said)
    _run_again(world)
    assert world.work() == 1 and world.gh.state.reruns == [run["id"]]
    (note,) = [c for c in world.gh.comments_on(REPO, pull["number"]) if "re-ran" in c["body"]]
    linked = f"[run {run['id']}]({run['html_url']})"
    assert linked in note["body"] and "so it was judged when it failed" in note["body"]


def test_a_rerun_whose_audit_row_was_lost_is_neither_repeated_nor_repaired(world: World) -> None:
    """Killed between the re-run and its audit row: the retry reads from GitHub that the run
    has an attempt Shipmate's App started, so it queues no repair beside the re-run, and the CI
    comment says the re-run once."""
    pull = _shipmate_pr(world)
    with killed_before_the_audit_row("actions.rerun_failed_jobs"):
        run = _fail(world, pull, real("cidiff-spork-441"))
        world.work()
    assert world.gh.state.reruns == [run["id"]]
    _run_again_without_a_repair(world, pull, run)
