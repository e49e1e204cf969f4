"""The `Shipmate` check run's buttons (issue 20, item 4): Stop while a task runs on a pull
request, Retry after it failed or was stopped, both through `check_run.requested_action` with
the same permission check as a comment; a user without write access is refused."""

from __future__ import annotations

import shutil
import threading
from typing import Any

import pytest

from standins.anthropic import Turn
from tests.test_e2e_github import FIXED_SCRIPT, REPO, World, _shipmate_pr
from tests.test_e2e_github import world as world

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]


def press(world: World, identifier: str, user: str, pull: int, check: dict[str, Any]) -> Any:
    return world.emit(
        "check_run",
        "requested_action",
        {
            "check_run": {
                "id": check["id"],
                "name": "Shipmate",
                "head_sha": check["head_sha"],
                "status": check["status"],
                "conclusion": check.get("conclusion"),
                "app": {"slug": "shipmate"},
                "pull_requests": [{"number": pull}],
            },
            "requested_action": {"identifier": identifier},
            "sender": {"login": user, "type": "User"},
        },
    )


def shipmate_checks(world: World, status: str) -> list[dict[str, Any]]:
    return [
        c
        for c in world.gh.state.check_runs.values()
        if c["name"] == "Shipmate" and c["status"] == status
    ]


def review(world: World, number: int) -> None:
    """alice asks for a change on Shipmate's pull request: a revision run on its branch."""
    made = world.gh.add_review(REPO, number, "alice", "changes_requested", "Fix add()", [])
    world.emit(
        "pull_request_review",
        "submitted",
        {
            "review": {
                "id": made["id"],
                "state": "changes_requested",
                "body": "Fix add()",
                "user": {"login": "alice"},
            },
            "pull_request": {"number": number},
            "sender": {"login": "alice", "type": "User"},
        },
    )


def test_stop_and_retry_from_the_check_run(world: World) -> None:
    number = int(_shipmate_pr(world)["number"])
    world.gh.add_collaborator(REPO, "mallory", "read")
    pressed: list[int] = []

    def stop_while_working(request: Any) -> Turn:
        (live,) = shipmate_checks(world, "in_progress")
        assert [a["identifier"] for a in live["_actions"]] == ["stop"]
        # Someone without write access presses it first: refused, the task goes on.
        assert press(world, "stop", "mallory", number, live).status_code == 202
        pressed.append(press(world, "stop", "alice", number, live).status_code)
        # A second worker takes the two deliveries while this run goes on (its own thread: this
        # one is the model stand-in's event loop).
        side = threading.Thread(target=world.work)
        side.start()
        side.join(60)
        return Turn.tool_use("bash", {"command": "sleep 20"}, text="1. Look again.")

    world.model.script([stop_while_working])
    review(world, number)
    world.work()
    assert pressed == [202] and not world.model.failures
    runs = [r for r in world.store.runs_for(REPO, number)]
    assert runs[-1]["status"] == "stopped", runs[-1]
    refusals = [
        c
        for c in world.gh.comments_on(REPO, number)
        if "only people with write access" in c["body"]
    ]
    assert len(refusals) == 1
    (ended,) = [c for c in world.gh.state.check_runs.values() if c.get("_actions")]
    assert ended["status"] == "completed" and [a["identifier"] for a in ended["_actions"]] == [
        "retry"
    ]
    pushes = len(world.gh.state.pushes)
    world.model.script(list(FIXED_SCRIPT))
    assert press(world, "retry", "alice", number, ended).status_code == 202
    world.work()
    assert len(world.store.runs_for(REPO, number)) == len(runs) + 1
    assert len(world.gh.state.pushes) == pushes + 1  # the retried task pushed its follow-up
