"""A change over the scope budget (bot/runs/scope.py) is held back: nothing is pushed and no pull
request opened; the sticky comment lists its files and sizes, the budget, and how to go on.

The change is stored (bot/db/held.py) so that a maintainer's `/shipmate apply --large` publishes
exactly it, without the agent: the run job rebuilds the tree from the stored patch on the same
base commit, checks that it is the very tree that was reviewed, reviews it again against the
repository's config of now (a secret or protected path is never published, large or not), and
publishes it as the held run, whose record it completes. Fixes, repairs and revisions are all
held the same way, each for its own diff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from bot.agent.ledger import Usage
from bot.config import RepoConfig
from bot.db.held import HeldChange
from bot.db.store import Store
from bot.runs.change import ReviewError, patch_bytes
from bot.runs.execution import Execution, shown
from bot.runs.render import Progress
from bot.runs.review import measure_scope, rebuild_change, review, scope_budget
from bot.runs.scope import held_text
from bot.sandbox.checkout import Checkout

USAGE = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
NOTHING_HELD = (
    "Nothing is held back here: `/shipmate apply --large` publishes a change that was held "
    "back for its size, and the last task here was not."
)
NEEDS_LARGE = (
    "The last change here was held back: it is larger than this repository's scope budget "
    "(the list is in its comment above). A maintainer can publish it as it is with "
    "`/shipmate apply --large`, or comment `/shipmate fix <narrower notes>` to try a smaller "
    "change."
)


def last_held(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last run here, if it holds a change back for its size (publishing it completes it)."""
    return runs[-1] if runs and runs[-1]["status"] == "held" else None


async def hold(
    store: Store,
    run_id: str,
    where: tuple[str, int],
    done: Execution,
    common: dict[str, Any],
    clean: Callable[[str], str],
) -> Progress:
    """Store the change `done` holds for `/shipmate apply --large`, and what the sticky says."""
    change, scope, budget, why = done.change, done.scope, done.scope_budget, done.over_scope
    if change is None or scope is None or budget is None or why is None:
        raise RuntimeError("only a change over the scope budget is held back")
    patch = await asyncio.to_thread(patch_bytes, change)
    detail = {
        # What `apply --large` shows again, as this run's redaction (which knew its secrets)
        # let it out: that job knows none of them.
        "plan": clean(done.plan),
        "summary": clean(done.summary),
        "tests_passed": done.tests_passed,
        "test_output": clean(done.test_output[-3000:]),
        "files": scope.files,
        "lines": scope.lines,
    }
    repo, number = where
    await asyncio.to_thread(
        store.held.hold,
        run_id,
        repo=repo,
        number=number,
        base_sha=change.base_sha,
        tree=change.tree,
        patch=patch,
        detail=detail,
    )
    return shown("held", done, common, reason=held_text(scope, budget, why))


def large_note(why: str, actor: str | None) -> str:
    """What a change published with `apply --large` says of itself, for its reviewers."""
    who = actor or "a maintainer"
    return (
        f"**Larger than the scope budget** ({why}): published as it was reviewed by {who}'s "
        "`/shipmate apply --large`."
    )


def held_for(store: Store, run_id: str, repo: str, number: int) -> HeldChange | str:
    """The change held back by `run_id` on this issue or PR, or why there is none to publish."""
    held = store.held.get(run_id)
    if held is None or (held.repo, held.number) != (repo, number):
        return "Nothing is held back here to publish."
    if held.published_at is not None:
        return "That change was published already."
    return held


def held_execution(
    held: HeldChange, run_row: Mapping[str, Any], checkout: Checkout, config: RepoConfig
) -> Execution:
    """The held run's result again, with its change rebuilt and reviewed once more; raises
    `ReviewError` when it cannot be published."""
    change = rebuild_change(checkout, held.patch, held.tree)
    try:
        refused = review(change, config)
        if refused is not None:
            raise ReviewError(refused.reason)
        scope = measure_scope(change)
    except BaseException:
        change.discard()
        raise
    detail = held.detail
    return Execution(
        status="completed",
        plan=str(detail.get("plan", run_row.get("plan")) or ""),
        summary=str(detail.get("summary") or ""),
        steps=int(run_row.get("steps") or 0),
        usage=Usage(*(int(run_row.get(name) or 0) for name in USAGE)),
        cost_usd=float(run_row.get("cost_usd") or 0.0),
        patch=change.patch,
        tests_passed=detail.get("tests_passed"),
        test_output=str(detail.get("test_output") or ""),
        sandbox_wall_seconds=float(run_row.get("sandbox_wall_seconds") or 0.0),
        sandbox_cpu_seconds=float(run_row.get("sandbox_cpu_seconds") or 0.0),
        change=change,
        scope=scope,
        scope_budget=scope_budget(config),
    )
