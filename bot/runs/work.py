"""A run's work: the agent on the task in a sandbox over the checkout (bot/runs/execute.py), with
the run's brief and budget, the sticky comment following it (its plan when it arrives, then the
tests), and the run's artifacts saved after."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.agent.budget import Budget
from bot.agent.model import Model, Relay, Reply
from bot.agent.prompts import Brief
from bot.agent.transcript import Transcript
from bot.config import RepoConfig
from bot.jobs.worker import JobContext
from bot.runs.artifacts import save_artifacts
from bot.runs.briefs import context_blocks, task_text
from bot.runs.budgets import monthly_caps, over_budget
from bot.runs.context import Run
from bot.runs.execute import Inputs, execute
from bot.runs.execution import Execution
from bot.sandbox import operator_secrets
from bot.sandbox.checkout import Checkout
from bot.sandbox.environment import Environments


class PlanWatch(Relay):
    """The model, unchanged, except that its first answer (the plan) is shown on the run's
    sticky comment when it arrives, and shown again when the tests start."""

    def __init__(self, inner: Model, run: Run) -> None:
        super().__init__(inner)
        self.run = run
        self.plan: str | None = None

    async def answered(self, reply: Reply, messages: list[dict[str, Any]]) -> None:
        if self.plan is not None:
            return
        self.plan = reply.text
        if self.run.verb != "plan":
            await self.run.sticky.show(self.run.progress("running", plan=self.plan))

    async def on_tests(self) -> None:
        await self.run.sticky.show(self.run.progress("testing", plan=self.plan or ""))

    async def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            await close()


def run_brief(run: Run, issue: dict[str, Any], config: RepoConfig) -> Brief:
    task = run.request.task
    return Brief(
        task=task_text(task, run.number, issue),
        context=context_blocks(task, issue),
        instructions=config.instructions,
        test_command=config.test,
        plan_only=run.verb == "plan",
    )


def run_budget(run: Run, config: RepoConfig, context: JobContext) -> Budget:
    """The repository's limits, else the operator's; cancelled with the job; stopped by the
    monthly caps (bot/runs/budgets.py). Its clock starts now."""
    settings, store = run.deps.settings, run.deps.store
    return Budget(
        config.max_steps or settings.max_steps,
        config.max_cost_usd or settings.max_cost_usd,
        config.timeout_seconds or settings.run_timeout_seconds,
        cancelled=context.should_abort,
        over_budget=lambda: over_budget(
            store, monthly_caps(settings, config), run.repo_name, run.installation_id
        ),
    )


async def work(
    run: Run,
    checkout: Checkout,
    base_sha: str,
    brief: Brief,
    budget: Budget,
    config: RepoConfig,
    granted: operator_secrets.Granted,
) -> Execution:
    """The execution of the task on `checkout`, which is released after it."""
    deps = run.deps
    try:
        model = PlanWatch(deps.model(), run)
    except BaseException:
        deps.cache.release(checkout)  # no model (a credential gone since start-up): no leak
        raise
    transcript = deps.settings.data_dir / "runs" / f"{run.run_id}.jsonl"
    try:
        done = await execute(
            Inputs(
                checkout=checkout,
                base_sha=base_sha,
                brief=brief,
                config=config,
                model=model,
                on_tests=model.on_tests,
                budget=budget,
                transcript=Transcript(transcript, tuple(run.clean.known)),
                store=deps.store,
                run_id=run.run_id,
                ca_dir=deps.cache.root / "ca",
                environments=Environments.from_settings(deps.settings),
                secrets=granted.secrets,
                allow_networks=deps.settings.egress_allow_networks,
            )
        )
    finally:
        deps.cache.release(checkout)
        await model.close()
    await asyncio.to_thread(
        save_artifacts,
        deps.store,
        run.run_id,
        transcript,
        status=done.status,
        diff=done.patch,
        test_output=done.test_output,
        clean=run.clean,
    )
    return done
