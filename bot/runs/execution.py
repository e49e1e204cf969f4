"""What one execution of a task yields (`Execution`), the steps that finish it once the agent is
done (take the change, run the repository's tests, review it), and what is shown and recorded of
it. Shared by `shipmate run` (bot/runs/local_run.py) and runs started from GitHub."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.agent.budget import Budget
from bot.agent.ledger import Usage
from bot.config import RepoConfig
from bot.runs.change import Change, ChangeTooLarge, ReviewError
from bot.runs.render import Progress, Stage
from bot.runs.review import measure_scope, review, scope_budget, take_change
from bot.runs.scope import Scope, ScopeBudget
from bot.sandbox.bwrap import BwrapSandbox
from bot.sandbox.checkout import Checkout


@dataclass
class Execution:
    status: str = "failed"
    reason: str = ""
    plan: str = ""
    summary: str = ""
    steps: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    patch: str = ""
    tests_passed: bool | None = None
    test_output: str = ""
    sandbox_wall_seconds: float = 0.0
    sandbox_cpu_seconds: float = 0.0
    # The reviewed tree, to be pushed as is; its caller discards it (bot/runs/review.py).
    change: Change | None = None
    # Its size and the repository's scope budget: a run from GitHub holds back a change over
    # it until a maintainer says `/shipmate apply --large` (bot/runs/held.py).
    scope: Scope | None = None
    scope_budget: ScopeBudget | None = None

    @property
    def over_scope(self) -> str | None:
        """Why the change is over the scope budget, or None."""
        if self.scope is None or self.scope_budget is None:
            return None
        return self.scope.over(self.scope_budget)

    def discard(self) -> None:
        if self.change is not None:
            self.change.discard()
            self.change = None


async def take(done: Execution, sandbox: BwrapSandbox, checkout: Checkout, base_sha: str) -> None:
    """The task's change, taken on the host (bot/runs/review.py): too large ends the run
    `blocked`, one git refuses (a path it never records) `failed`, each with the reason."""
    try:
        layers = sandbox.workspace_layers()
        if layers is None:
            return
        change = await asyncio.to_thread(take_change, layers, checkout, base_sha)
    except ChangeTooLarge as exc:
        done.status, done.reason = "blocked", str(exc)
        return
    except ReviewError as exc:
        done.status, done.reason = "failed", f"the change could not be taken: {exc}"
        return
    if change.empty:
        change.discard()
        return
    done.change, done.patch = change, change.patch


async def run_tests(
    done: Execution,
    sandbox: BwrapSandbox,
    command: str,
    budget: Budget,
    on_tests: Callable[[], Awaitable[None]] | None,
) -> None:
    """The repository's tests on the change (after it was taken: they cannot alter it)."""
    if on_tests is not None:
        await on_tests()
    tests = await sandbox.exec(
        ["bash", "-lc", command], timeout_seconds=max(30.0, budget.remaining())
    )
    done.tests_passed = tests.exit_code == 0
    done.test_output = (tests.stdout + tests.stderr).decode("utf-8", errors="replace")[-3000:]


def judge(done: Execution, config: RepoConfig) -> None:
    """The review: a held-back change ends `blocked` and nothing of it is kept or shown (it may
    carry the very secret it was held for)."""
    if done.change is None:
        return
    held = review(done.change, config)
    if held is not None:
        done.status, done.reason, done.patch = "blocked", held.reason, ""
        done.discard()
        return
    try:
        done.scope, done.scope_budget = measure_scope(done.change), scope_budget(config)
    except ReviewError as exc:  # never published unmeasured
        done.status, done.reason, done.patch = "failed", str(exc), ""
        done.discard()


def shown(stage: Stage, done: Execution, common: Mapping[str, Any], **extra: Any) -> Progress:
    """What the sticky comment shows of a run that went as far as the tests: its diff, whether
    they passed and the end of their output."""
    return Progress(
        stage=stage,
        diff=done.patch,
        tests_passed=done.tests_passed,
        test_summary=done.test_output[-1500:],
        **common,
        **extra,
    )


class Totals(Protocol):
    """What a finished run's record keeps of it: an `Execution`, or `shipmate run`'s result."""

    reason: str
    plan: str
    steps: int
    cost_usd: float
    usage: Usage
    sandbox_wall_seconds: float
    sandbox_cpu_seconds: float


def record_finish(
    store: Any, run_id: str, totals: Totals, *, status: str, branch: str | None
) -> None:
    """The run's record completed: how it ended, on which branch, and what it cost."""
    store.update_run(
        run_id,
        status=status,
        branch=branch,
        reason=totals.reason,
        plan=totals.plan,
        steps=totals.steps,
        cost_usd=totals.cost_usd,
        finished_at=time.time(),
        sandbox_wall_seconds=totals.sandbox_wall_seconds,
        sandbox_cpu_seconds=totals.sandbox_cpu_seconds,
        **totals.usage.as_dict(),
    )
