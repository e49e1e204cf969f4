"""A change held back for its size, and `/shipmate apply --large`, when a job is killed and runs
again (bot/runs/attempts.py, bot/runs/apply_held.py): a change a retried attempt held is
published as any other, and a publish job killed once it had published ends quietly."""

from __future__ import annotations

from bot.db.held import HeldChanges
from bot.db.store import Store
from standins.anthropic import Turn
from tests.kills import killed_after
from tests.scripts import edit_add
from tests.test_e2e_github import REPO, World
from tests.test_e2e_github import world as world
from tests.test_e2e_run_retry import _run_again
from tests.test_e2e_scope import SPLIT, stickies


def _split_script() -> list[Turn]:
    """A fix that also splits the constants into modules: larger than the scope budget."""
    return [
        Turn.text("1. Fix add().\n2. Split the constants into modules."),
        Turn.tool_use("bash", {"command": SPLIT}),
        edit_add(),
        Turn.text("Fixed add() and split the constants."),
    ]


def test_apply_large_killed_after_publishing_leaves_the_sticky_saying_done(world: World) -> None:
    """`/shipmate apply --large` published the change (PR open, held change marked published)
    and the worker was killed before the job was marked done. The retry must not turn the
    sticky comment that says "Done" into "failed: That change was published already."."""
    world.model.script(_split_script())
    world.comment("/shipmate fix")
    world.work()
    with killed_after(HeldChanges, "mark_published"):
        world.comment("/shipmate apply --large")
        world.work()
    (pull,) = world.gh.state.pulls.values()
    done = stickies(world)[-1]
    assert pull["html_url"] in done
    _run_again(world)
    world.work()
    assert len(world.gh.state.pulls) == 1
    assert stickies(world)[-1] == done, stickies(world)[-1]
    (held,) = world.store.runs_for(REPO, 1)
    change = world.store.held.get(str(held["id"]))
    assert change is not None and change.published_at is not None


def test_a_change_held_by_a_retried_attempt_can_be_published(world: World) -> None:
    """The fix job was killed after its run row and ran again; the retry (record `key.2`)
    held its change back for its size. `/shipmate apply --large` publishes it, as it does a
    change held by a first attempt."""
    world.model.script(_split_script())
    with killed_after(Store, "record_run"):
        world.comment("/shipmate fix")
        world.work()
    world.model.script(_split_script())
    _run_again(world)
    world.work()
    held = world.store.runs_for(REPO, 1)[-1]
    assert held["status"] == "held" and str(held["id"]).endswith(".2")
    world.comment("/shipmate apply --large")
    world.work()
    (pull,) = world.gh.state.pulls.values()
    assert pull["html_url"] in stickies(world)[-1]
