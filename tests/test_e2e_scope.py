"""The smallest change, enforced (issue 20, item 1): a change over the scope budget is held back —
no branch pushed, no pull request, the sticky comment lists its files and sizes and how to go on
— until a maintainer's `/shipmate apply --large` publishes exactly it; someone without write
access is refused. Revisions and repairs on a pull request obey the same budget for their own
diff."""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

import pytest

from bot.github.client import RepoClient
from standins.anthropic import Turn
from tests.scripts import edit_add
from tests.test_e2e_check_actions import review
from tests.test_e2e_github import REPO, World, _failing_workflow, _shipmate_pr
from tests.test_e2e_github import world as world

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]
# Eleven new modules and a lock file (counted apart) besides the fix of calc.py: 12 files.
SPLIT = (
    "for n in $(seq 1 11); do printf 'VALUE = %s\\n' $n > part_$n.py; done; "
    "printf '{\\n  \"lockfileVersion\": 3\\n}\\n' > package-lock.json"
)


def git(world: World, *args: str) -> str:
    path = world.gh.state.repos[REPO].path
    return subprocess.run(
        ["git", *args], cwd=path, capture_output=True, text=True, check=True
    ).stdout


def stickies(world: World, number: int = 1) -> list[str]:
    return [
        c["body"]
        for c in world.gh.comments_on(REPO, number)
        if c["user"]["login"] == "shipmate[bot]"
    ]


def test_a_twelve_file_change_is_held_back_then_published_by_apply_large(world: World) -> None:
    gh = world.gh
    world.model.script(
        [
            Turn.text("1. Fix add().\n2. Split the constants into modules."),
            Turn.tool_use("bash", {"command": SPLIT}),
            edit_add(),
            Turn.text("Fixed add() and split the constants."),
        ]
    )
    world.comment("/shipmate fix")
    world.work()
    assert gh.state.pushes == [] and not gh.state.pulls
    assert "shipmate/" not in git(world, "for-each-ref", "--format=%(refname)")
    held = stickies(world)[-1]
    assert "Held back: over the scope budget" in held
    assert "12 files (at most 10)" in held and "budget 10 files, 400 lines" in held
    assert "- `calc.py`: +1 −1" in held
    assert all(f"- `part_{n}.py`: +1 −0" in held for n in range(1, 12))
    generated = held.split("**Generated files**")[1].split("To go on")[0]
    assert "- `package-lock.json`: +3 −0" in generated and "part_1.py" not in generated
    assert "`/shipmate apply --large`" in held and "narrower notes" in held
    (run,) = world.store.runs_for(REPO, 1)
    assert run["status"] == "held" and run["branch"] is None
    calls = len(world.model.requests)

    gh.add_collaborator(REPO, "mallory", "read")
    world.comment("/shipmate apply --large", user="mallory")
    world.comment("/shipmate apply")  # alice, without --large
    world.work()
    assert gh.state.pushes == [] and not gh.state.pulls
    said = [c["body"] for c in gh.comments_on(REPO, 1)]
    assert any("only people with write access" in body for body in said)
    assert any("can publish it as it is with `/shipmate apply --large`" in body for body in said)

    world.comment("/shipmate apply --large")
    world.work()
    (pull,) = gh.state.pulls.values()
    (push,) = gh.state.pushes
    assert push["ref"] == f"refs/heads/{pull['head']['ref']}" and push["fast_forward"]
    assert pull["body"].startswith("Fixes #1") and "Split the constants" in pull["body"]
    assert "**Larger than the scope budget** (12 files (at most 10))" in pull["body"]
    assert "by alice's `/shipmate apply --large`" in pull["body"]
    changed = git(world, "diff", "--name-only", run["base_sha"], push["new"]).split()
    assert sorted(changed) == sorted(
        ["calc.py", "package-lock.json", *(f"part_{n}.py" for n in range(1, 12))]
    )
    held_tree = world.store.held.get(str(run["id"]))
    assert held_tree is not None and held_tree.published_at is not None
    assert git(world, "rev-parse", f"{push['new']}^{{tree}}").strip() == held_tree.tree
    assert len(world.model.requests) == calls  # published as held: the agent did not run again
    (run,) = world.store.runs_for(REPO, 1)
    assert run["status"] == "completed" and run["branch"] == pull["head"]["ref"]
    assert pull["html_url"] in stickies(world)[-1]

    world.comment("/shipmate apply --large")
    world.work()
    assert "Nothing is held back here" in gh.comments_on(REPO, 1)[-1]["body"]
    assert len(gh.state.pushes) == 1


def test_a_revision_obeys_the_budget_for_its_own_diff(world: World) -> None:
    gh = world.gh
    gh.commit(REPO, "main", {".github/shipmate.yml": "scope: {max_files: 2}\n"})
    pull = _shipmate_pr(world)  # already two files: calc.py, notes.txt
    number = int(pull["number"])
    create = "printf 'x\\n' > a.py; printf 'y\\n' > b.py"
    world.model.script([Turn.text("1. Add two."), Turn.tool_use("bash", {"command": create})])
    world.model.script([Turn.text("Added a.py and b.py.")])
    review(world, number)
    world.work()
    assert len(gh.state.pushes) == 1  # its own two files fit, whatever the PR holds already

    three = "printf 'z\\n' > c.py; printf 'z\\n' > d.py; printf 'z\\n' > e.py"
    world.model.script([Turn.text("1. Add three."), Turn.tool_use("bash", {"command": three})])
    world.model.script([Turn.text("Added three.")])
    review(world, number)
    world.work()
    assert len(gh.state.pushes) == 1
    held = stickies(world, number)[-1]
    assert "3 files (at most 2)" in held and "- `e.py`: +1 −0" in held
    assert world.store.runs_for(REPO, number)[-1]["status"] == "held"

    head = gh.branch_sha(REPO, pull["head"]["ref"])
    world.comment("/shipmate apply --large", number=number)
    world.work()
    (_, follow_up) = gh.state.pushes
    assert follow_up["ref"] == f"refs/heads/{pull['head']['ref']}" and follow_up["old"] == head
    assert sorted(git(world, "diff", "--name-only", head, follow_up["new"]).split()) == [
        "c.py",
        "d.py",
        "e.py",
    ]
    assert len(gh.state.pulls) == 1  # onto the pull request's own branch


def test_a_repair_over_the_budget_is_held_back(world: World) -> None:
    world.gh.commit(REPO, "main", {".github/shipmate.yml": "scope: {max_lines: 3}\n"})
    pull = _shipmate_pr(world)
    lines = "printf 'a\\nb\\nc\\nd\\n' > helpers.py"
    world.model.script([Turn.text("1. Fix add()."), Turn.tool_use("bash", {"command": lines})])
    world.model.script([edit_add(), Turn.text("Fixed add() with helpers.")])
    _failing_workflow(world, pull)
    world.work()
    assert world.gh.state.pushes == []
    (held,) = stickies(world, int(pull["number"]))
    assert "6 changed lines (at most 3)" in held and "- `helpers.py`: +4 −0" in held
    assert "`/shipmate repair`" in held and "`/shipmate apply --large`" in held


def test_a_publish_cut_short_after_its_push_is_published_by_its_retry(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies between the push and the pull request: the job's next attempt must still
    publish the held change (not fail for ever on a branch its first attempt already made)."""
    gh = world.gh
    world.model.script(
        [
            Turn.text("1. Fix add().\n2. Split the constants into modules."),
            Turn.tool_use("bash", {"command": SPLIT}),
            edit_add(),
            Turn.text("Fixed add() and split the constants."),
        ]
    )
    world.comment("/shipmate fix")
    world.work()
    (run,) = world.store.runs_for(REPO, 1)
    assert run["status"] == "held"

    create_pull = RepoClient.create_pull
    cut: list[bool] = []

    async def dies_once(self: RepoClient, **kwargs: Any) -> Any:
        if not cut:
            cut.append(True)
            raise RuntimeError("the worker died here")
        return await create_pull(self, **kwargs)

    monkeypatch.setattr(RepoClient, "create_pull", dies_once)
    world.comment("/shipmate apply --large")
    world.work()
    assert len(gh.state.pushes) == 1 and not gh.state.pulls  # pushed, then cut short
    time.sleep(1.1)  # a retry comes after a backoff: its commit is not the same second's
    with world.store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE jobs SET run_at = 0 WHERE state = 'waiting'")
    world.work()
    (pull,) = gh.state.pulls.values()
    held = world.store.held.get(str(run["id"]))
    assert held is not None and held.published_at is not None
    head = gh.branch_sha(REPO, pull["head"]["ref"])
    assert git(world, "rev-parse", f"{head}^{{tree}}").strip() == held.tree
    (run,) = world.store.runs_for(REPO, 1)
    assert run["status"] == "completed" and run["branch"] == pull["head"]["ref"]


# Twelve files whose paths are 2,400 characters long: their list and their diff pass what GitHub
# takes in one comment unless the sticky comment is cut to fit.
LONG_NAMES = (
    "D=$(printf 'x%.0s' $(seq 1 199)); P=$D/$D/$D/$D/$D/$D/$D/$D/$D/$D/$D/$D; mkdir -p $P; "
    "for n in $(seq 1 12); do printf 'v\\n' > $P/part_$n.py; done"
)


def test_a_held_change_with_long_names_is_still_held(world: World) -> None:
    world.model.script(
        [
            Turn.text("1. Add twelve modules."),
            Turn.tool_use("bash", {"command": LONG_NAMES}),
            Turn.text("Added twelve modules."),
        ]
    )
    world.comment("/shipmate fix")
    world.work()
    (run,) = world.store.runs_for(REPO, 1)
    assert run["status"] == "held"
    held = stickies(world)[-1]
    assert "12 files (at most 10)" in held and len(held) <= 65_536
    assert "part_12.py`: +1 −0" in held and "…" in held
    world.comment("/shipmate apply --large")
    world.work()
    (pull,) = world.gh.state.pulls.values()
    assert pull["html_url"] in stickies(world)[-1]
