"""What new users hit in their first hour, end to end (the `world` of tests/test_e2e_github.py):
a 👀 GitHub refuses does not fail the job; a second `/shipmate fix` never opens a second pull
request; Shipmate runs the tests itself at the end of every run, so "no change was needed" is
said only when they pass."""

from __future__ import annotations

import shutil

import pytest
from structlog.testing import capture_logs

from bot.github.replies import unmarked
from standins.anthropic import Turn
from tests.scripts import edit_add
from tests.test_e2e_github import REPO, World
from tests.test_e2e_github import world as world

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]
FIXED = "def add(a, b):\n    return a + b\n"


def _mine(world: World, number: int = 1) -> list[str]:
    return [
        unmarked(c["body"])
        for c in world.gh.comments_on(REPO, number)
        if c["user"]["login"].endswith("[bot]")
    ]


def _jobs(world: World) -> list[tuple[str, str, int]]:
    with world.store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT kind, state, attempts FROM jobs ORDER BY id")
        return [(kind, state, attempts) for kind, state, attempts in rows]


def test_a_comment_gone_before_its_eyes_still_gets_its_answer(world: World) -> None:
    """The comment was deleted before the job ran: GitHub answers the 👀 with 404. The job goes
    on (once, not five times), and the failed call is logged with method, route and status."""
    gone = 424242
    world.emit(
        "issue_comment",
        "created",
        {
            "comment": {"id": gone, "body": "/shipmate status", "user": {"login": "alice"}},
            "issue": {"number": 1, "title": "add() subtracts", "body": ""},
            "sender": {"login": "alice", "type": "User"},
        },
    )
    with capture_logs() as logs:
        assert world.work() == 1
    assert _jobs(world) == [("webhook", "done", 1)]
    assert _mine(world) == ["No task has run here yet."]
    route = f"/repos/{REPO}/issues/comments/{gone}/reactions"
    failed = [(e["method"], e["route"], e["status"]) for e in logs if e["event"] == "github.failed"]
    assert ("POST", route, 404) in failed


def _fix(world: World) -> None:
    world.model.script(
        [
            Turn.text("1. Fix add()."),
            edit_add(),
            Turn.text("Fixed add()."),
        ]
    )


def test_a_second_fix_answers_with_the_open_pull_request_or_changes_it(world: World) -> None:
    _fix(world)
    world.comment("/shipmate fix")
    world.work()
    (pull,) = world.gh.state.pulls.values()
    world.comment("/shipmate fix")  # again, with nothing more to say
    world.work()
    assert len(world.gh.state.pulls) == 1
    assert _mine(world)[-1].startswith(
        f"There is already a pull request for this: {pull['html_url']}"
    )
    assert [r["kind"] for r in world.store.runs_for(REPO, 1)] == ["fix"]  # nothing ran again
    before = pull["head"]["sha"]
    world.model.script(
        [
            Turn.text("1. Name the parameters x and y."),
            Turn.tool_use(
                "str_replace_based_edit_tool",
                {
                    "command": "str_replace",
                    "path": "calc.py",
                    "old_str": "def add(a, b):\n    return a + b",
                    "new_str": "def add(x, y):\n    return x + y",
                },
            ),
            Turn.text("Renamed them."),
        ]
    )
    world.comment("/shipmate fix and call the parameters x and y")
    world.work()
    assert len(world.gh.state.pulls) == 1  # the same pull request, one commit further
    (pull,) = world.gh.state.pulls.values()
    assert pull["head"]["sha"] != before and world.gh.state.pushes[-1]["ref"].endswith(
        pull["head"]["ref"]
    )
    asked = world.model.requests[-3]
    assert "call the parameters x and y" in str(asked["messages"][0])
    sticky = _mine(world)[-1]
    assert "✅ Done" in sticky and pull["html_url"] in sticky


def _no_change(world: World) -> None:
    world.model.script([Turn.text("1. Look at add()."), Turn.text("It looks right to me.")])


def test_no_change_was_needed_is_said_only_when_the_tests_pass(world: World) -> None:
    _no_change(world)
    world.comment("/shipmate fix")
    world.work()
    sticky = _mine(world)[-1]
    assert "### ❌ No change made, and the tests fail" in sticky
    assert "✅" not in sticky and "**Tests** did not pass." in sticky and "FAILED" in sticky
    assert not world.gh.state.pulls
    world.gh.commit(REPO, "main", {"calc.py": FIXED}, "Fix add() by hand")
    _no_change(world)
    world.comment("/shipmate fix")
    world.work()
    sticky = _mine(world)[-1]
    assert "### ✅ Done: no change was needed" in sticky and "**Tests** passed." in sticky
