"""One task in a sandbox, from a checkout to a reviewed patch: setup step, agent loop, the
repository's tests, the diff, and the review that holds back secrets and protected paths.
Shared by `shipmate run` and runs started from GitHub (bot/runs/start.py).

The steps: the checkout scanned for secrets, the image prepared, the sandbox opened; inside it
the `setup:` commands, the agent, the change taken and the tests run; then the review
(bot/runs/execution.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from bot.agent.budget import Budget
from bot.agent.loop import Agent
from bot.agent.model import Model
from bot.agent.prompts import Brief, conventions, system_prompt, user_prompt
from bot.agent.tools import Tools
from bot.agent.transcript import Transcript
from bot.config import RepoConfig
from bot.runs.execution import Execution, judge, run_tests, take
from bot.runs.recording import Records
from bot.sandbox import open_sandbox
from bot.sandbox.base import ALLOW_BY_REPO_CONFIG, ImageRoot, Limits, SandboxSpec
from bot.sandbox.bwrap import BwrapSandbox
from bot.sandbox.checkout import Checkout
from bot.sandbox.environment import Environments
from bot.sandbox.image import ImageError
from bot.sandbox.setup import CacheMount, DependencyCache, run_setup
from bot.security.tree_scan import TreeScan, scan_tree

log = structlog.get_logger("shipmate.execute")


@dataclass(frozen=True)
class Inputs:
    """One task to execute: the checkout and the commit it is of, the brief, the repository's
    config, the model and its budget, where the run is recorded, and what its sandbox may
    reach."""

    checkout: Checkout
    base_sha: str
    brief: Brief
    config: RepoConfig
    model: Model
    budget: Budget
    transcript: Transcript
    store: Any | None
    run_id: str
    allow_hosts: Sequence[str] = ()
    # NAME -> (real value, hosts): what the operator's declarations granted this run
    # (bot/sandbox/operator_secrets.py); none for a fork.
    secrets: Mapping[str, tuple[str, Sequence[str]]] = field(default_factory=dict)
    # Ranges beyond the public internet the egress proxy may reach: the operator's setting.
    allow_networks: Sequence[str] = ()
    ca_dir: Path | None = None
    # Called as Shipmate's own test run starts.
    on_tests: Callable[[], Awaitable[None]] | None = None
    # Where the image a repository's `environment:` names comes from; None: host folders only.
    environments: Environments | None = None
    # How the egress proxy's refusal says a host can be allowed.
    allow_hint: str = ALLOW_BY_REPO_CONFIG


async def execute(inputs: Inputs) -> Execution:
    """The task run in a sandbox over the checkout, its change taken, tested and reviewed; the
    caller discards the change it holds."""
    transcript = inputs.transcript
    transcript.known = (*transcript.known, *(value for value, _ in inputs.secrets.values()))
    config, checkout = inputs.config, inputs.checkout
    deps = (
        DependencyCache(checkout.cache_root / "deps").mount(checkout.repo_key, checkout.tree)
        if config.setup
        else None
    )
    found = await _scan(inputs)
    holding = contextlib.AsyncExitStack()  # the image, kept from eviction while it runs
    try:
        image = await _environment(holding, inputs.environments, config, checkout.tree)
    except ImageError as exc:
        return Execution(reason=f"the environment could not be prepared: {exc}")
    if image is not None:  # what the task ran on, exactly
        transcript.write("environment", digest=image.digest)
    records = Records(inputs.store, inputs.run_id, inputs.model.name)
    spec = _spec(inputs, image, deps, found)
    async with holding, open_sandbox(spec, audit=records.egress, ca_dir=inputs.ca_dir) as sandbox:
        records.sandbox = sandbox
        done = await _in_sandbox(inputs, sandbox, deps, found, records)
    judge(done, config)
    if done.status == "completed":
        done.reason = ""
    return done


async def _scan(inputs: Inputs) -> TreeScan:
    """The checkout's secrets: the transcript and the sandbox's egress keep them out, and the
    findings (where, never what) are written down."""
    found = await asyncio.to_thread(scan_tree, inputs.checkout.tree)
    inputs.transcript.known = (*inputs.transcript.known, *found.values)
    if found.findings:
        where = [asdict(f) for f in found.findings]
        inputs.transcript.write("checkout_scan", findings=where)
        log.warning("checkout.secrets", run_id=inputs.run_id, findings=where)
    return found


def _spec(
    inputs: Inputs, image: ImageRoot | None, deps: CacheMount | None, found: TreeScan
) -> SandboxSpec:
    """The sandbox of this task: an overlay over the checkout, on its image, with its network,
    secrets and dependency cache."""
    checkout = inputs.checkout
    layered_deps, rw_deps = deps.binds() if deps is not None else ({}, {})
    return SandboxSpec(
        image=image,
        workspace=checkout.tree,
        overlay_lower=checkout.tree,
        ro_binds=checkout.ro_binds,
        rw_binds=rw_deps,
        layered_binds=layered_deps,
        allow_hosts=tuple(inputs.allow_hosts) + tuple(inputs.config.network.allow),
        secrets=inputs.secrets,
        allow_networks=tuple(inputs.allow_networks),
        guarded=tuple(sorted(found.values)),
        limits=Limits(timeout_seconds=max(1.0, inputs.budget.timeout_seconds)),
        task_id=inputs.run_id,
        allow_hint=inputs.allow_hint,
    )


async def _in_sandbox(
    inputs: Inputs,
    sandbox: BwrapSandbox,
    deps: CacheMount | None,
    found: TreeScan,
    records: Records,
) -> Execution:
    """Setup, the agent, then the change taken and Shipmate's own test run."""
    done = Execution()
    if deps is not None:
        failed = await _setup(inputs, sandbox, deps)
        if failed is not None:
            done.reason = failed
            return done
    await _agent(inputs, sandbox, found, records, done)
    try:
        if done.status == "completed" and not inputs.brief.plan_only:
            await take(done, sandbox, inputs.checkout, inputs.base_sha)
            # Shipmate's own test run, change or none: what the model said is not proof.
            if done.status == "completed" and inputs.config.test:
                await run_tests(done, sandbox, inputs.config.test, inputs.budget, inputs.on_tests)
    except BaseException:
        done.discard()
        raise
    done.sandbox_wall_seconds, done.sandbox_cpu_seconds = sandbox.wall_seconds, sandbox.cpu_seconds
    return done


async def _setup(inputs: Inputs, sandbox: BwrapSandbox, deps: CacheMount) -> str | None:
    """The repository's `setup:` commands, which fill its dependency cache; why they failed,
    or None."""
    setup = inputs.config.setup
    results = await run_setup(sandbox, setup, timeout_seconds=max(1.0, inputs.budget.remaining()))
    if results[-1].exit_code != 0:
        return f"the setup command failed: {setup[len(results) - 1]}"
    deps.complete()
    return None


async def _agent(
    inputs: Inputs, sandbox: BwrapSandbox, found: TreeScan, records: Records, done: Execution
) -> None:
    """The agent loop on the brief; how it ended, its plan, summary and cost go into `done`."""
    tools = Tools(sandbox, known_secrets=found.values)
    agent = Agent(
        inputs.model, tools, inputs.budget, transcript=inputs.transcript, on_call=records.model_call
    )
    brief = inputs.brief
    outcome = await agent.run(
        system_prompt(brief, conventions(inputs.checkout.tree)),
        user_prompt(brief),
        plan_only=brief.plan_only,
    )
    done.status, done.reason = outcome.status, outcome.reason
    done.plan, done.summary, done.steps = outcome.plan, outcome.summary, outcome.steps
    done.usage, done.cost_usd = agent.ledger.usage, agent.ledger.cost


async def _environment(
    holding: contextlib.AsyncExitStack,
    environments: Environments | None,
    config: RepoConfig,
    tree: Path,
) -> ImageRoot | None:
    """The image the task runs on (held by `holding`), or None for the host's folders."""
    if environments is None:
        if config.environment is not None:
            raise ImageError("this Shipmate was started without an image cache")
        return None
    return await holding.enter_async_context(environments.root(config, tree))
