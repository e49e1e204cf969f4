"""Runs an eval: each task checked out at its base commit, through `run_local` (checkout cache,
sandbox, agent loop, review, commit) with its brief (the problem statement, or for the deploy
test what the deploy repair path makes of a failed deploy), then graded in a fresh sandbox.
Tasks run `workers` at a time; one task's failure is its own row, never the end of the eval."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bot.agent.budget import Caps
from bot.agent.model import Model
from bot.agent.prompts import Brief
from bot.evaluation.grade import grade
from bot.evaluation.tasks import EvalTask
from bot.runs.local_run import LocalRun, run_local
from bot.sandbox.base import SandboxUnavailable
from bot.sandbox.checkout import CheckoutCache, CheckoutError, git

TASK_LINE = "Fix the problem described in the problem statement, and keep every test passing."


@dataclass(frozen=True)
class TaskResult:
    instance_id: str
    resolved: bool
    status: str
    steps: int
    cost_usd: float
    wall_s: float
    reason: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "resolved": self.resolved,
            "status": self.status,
            "steps": self.steps,
            "cost_usd": round(self.cost_usd, 6),
            "wall_s": round(self.wall_s, 3),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class EvalSettings:
    caps: Caps
    cache: CheckoutCache
    record_dir: Path


def summary(results: Sequence[TaskResult], wall_s: float) -> dict[str, Any]:
    resolved = sum(1 for r in results if r.resolved)
    return {
        "tasks": len(results),
        "resolved": resolved,
        "resolved_rate": round(resolved / len(results), 4) if results else 0.0,
        "cost_usd": round(sum(r.cost_usd for r in results), 6),
        "wall_s": round(wall_s, 3),
    }


def _check_out(task: EvalTask, into: Path) -> None:
    git("clone", "-q", task.repo, str(into))
    git("checkout", "-q", "-B", "shipmate-eval", task.base_commit, cwd=into)


async def run_task(task: EvalTask, model: Model, settings: EvalSettings) -> TaskResult:
    """The repository test: the problem statement is the brief."""
    brief = Brief(task=TASK_LINE, context=[("problem statement", task.problem_statement)])
    return await run_graded(task, brief, model, settings)


async def run_graded(
    task: EvalTask, brief: Brief, model: Model, settings: EvalSettings
) -> TaskResult:
    """`brief` run on a fresh clone of the task's repository at its base commit, and the
    resulting commit (the base commit when the run made none) graded by the task's tests."""
    started = time.monotonic()

    def ended(status: str, reason: str, **values: Any) -> TaskResult:
        return TaskResult(
            task.instance_id,
            False,
            status,
            wall_s=time.monotonic() - started,
            reason=reason,
            **{"steps": 0, "cost_usd": 0.0, **values},
        )

    with tempfile.TemporaryDirectory(prefix="shipmate-eval-") as tmp:
        repo = Path(tmp) / "repo"
        try:
            await asyncio.to_thread(_check_out, task, repo)
        except CheckoutError as exc:
            return ended("failed", f"checkout: {exc}")
        request = LocalRun(
            repo=repo,
            brief=brief,
            max_steps=None,
            max_cost_usd=None,
            timeout_seconds=None,
            transcript=settings.record_dir / f"{task.instance_id}.transcript.jsonl",
            defaults=settings.caps,
        )
        try:
            result = await run_local(request, model=model, cache=settings.cache)
        except SandboxUnavailable as exc:
            return ended("failed", f"the sandbox could not start: {exc}")
        commit = result.branch or task.base_commit
        verdict = await grade(task, repo, commit)
    return TaskResult(
        task.instance_id,
        verdict.resolved,
        result.status,
        result.steps,
        result.cost_usd,
        time.monotonic() - started,
        verdict.reason or result.reason,
    )


class Answerable(Protocol):
    """What picking a task's answers needs of it (`EvalTask`, `DeployTask`)."""

    @property
    def instance_id(self) -> str: ...

    @property
    def patch(self) -> str: ...


T = TypeVar("T", bound=Answerable)
RunOne = Callable[[T, Model, EvalSettings], Awaitable[TaskResult]]


async def run_eval(
    tasks: Sequence[T],
    model_for: Callable[[T], Model],
    settings: EvalSettings,
    run: RunOne[T],
    *,
    workers: int = 1,
    on_result: Callable[[TaskResult], None] = lambda result: None,
) -> list[TaskResult]:
    gate = asyncio.Semaphore(workers)

    async def one(task: T) -> TaskResult:
        async with gate:
            result = await run(task, model_for(task), settings)
        on_result(result)
        return result

    return list(await asyncio.gather(*(one(task) for task in tasks)))
