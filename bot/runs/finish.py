"""A run's end: its result becomes what the sticky comment and the check run show (a plan, a
change published, a change held back for its size, no change, or why it failed or stopped), and
the run's record is completed."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from bot.db.store import Store
from bot.runs.checks import end_check
from bot.runs.context import Ending, Run, lock_key
from bot.runs.execution import Execution, record_finish, shown
from bot.runs.held import hold, large_note
from bot.runs.pulls import publish_change
from bot.runs.render import Progress, Stage

log = structlog.get_logger("shipmate.runs")


async def finish(
    run: Run, done: Execution, base_sha: str, default_branch: str, issue: dict[str, Any]
) -> Progress:
    common = await common_fields(run, done)
    final, branch = await outcome(Ending(run, done, base_sha, default_branch, issue, common))
    await run.sticky.show(final)
    await end_check(run, final)
    await run.audit("comment.edit", f"{run.repo_name}#{run.number}")
    status = final.stage if final.stage in ("stopped", "held") else done.status
    await asyncio.to_thread(
        record_finish, run.deps.store, run.run_id, done, status=status, branch=branch
    )
    log.info("run.finished", run_id=run.run_id, status=done.status, pr=final.pr_url)
    return final


async def common_fields(run: Run, done: Execution) -> dict[str, Any]:
    """What every final `Progress` of the run shows: its plan, cost, steps and refused egress."""
    common: dict[str, Any] = {
        "key": run.key,
        "verb": run.verb,
        "plan": done.plan,
        "usage": done.usage,
        "cost_usd": done.cost_usd,
        "steps": done.steps,
        "sandbox_seconds": done.sandbox_wall_seconds,
        "run_url": run.url,
        "refused": await asyncio.to_thread(refused_egress, run.deps.store, run.run_id),
    }
    if run.request.task.publish is not None and done.over_scope:
        common["notes"] = (large_note(done.over_scope, run.request.actor),)
    return common


async def outcome(ending: Ending) -> tuple[Progress, str | None]:
    """What the run's result comes to, and the branch it pushed (None: it pushed nothing)."""
    run, done, common = ending.run, ending.done, ending.common
    if done.status == "completed" and run.verb == "plan":
        return Progress(stage="done", **common), None
    if done.status == "blocked":
        reason = f"The change was held back: {done.reason}. Nothing was pushed."
        return Progress(stage="blocked", reason=reason, diff="", **common), None
    if done.status != "completed":
        stage: Stage = "stopped" if "cancelled" in done.reason else "failed"
        return Progress(stage=stage, reason=f"The run ended: {done.reason}", **common), None
    if done.change is None:
        return no_change(done, common), None
    if done.over_scope and run.request.task.publish is None:
        where = (run.repo_name, run.number)
        final = await hold(run.deps.store, run.run_id, where, done, common, run.clean)
        await run.audit("change.held", lock_key(*where), reason=done.over_scope)
        return final, None
    return await publish_change(ending)


def no_change(done: Execution, common: dict[str, Any]) -> Progress:
    """A run that changed nothing: "no change was needed" only when the tests, which Shipmate
    ran itself, pass."""
    if done.tests_passed:
        reason = "No change was needed: the tests pass."
    elif done.tests_passed is False:
        reason = "I made no change, and the tests fail."
    else:
        reason = (
            "I made no change. The repository names no test command (`test:` in "
            "`.github/shipmate.yml`), so nothing showed whether one was needed."
        )
    return shown("no_change", done, common, reason=reason)


def refused_egress(store: Store, run_id: str) -> tuple[tuple[str, str, str | None], ...]:
    """The distinct (host, method, command) the egress proxy refused during a run."""
    seen: dict[tuple[str, str, str | None], None] = {}
    for row in store.egress_for_task(run_id):
        if not row["allowed"]:
            seen[(str(row["host"]), str(row.get("method") or ""), row.get("command"))] = None
    return tuple(seen)[:20]
