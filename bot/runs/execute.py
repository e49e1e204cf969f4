"""One task in a sandbox, from a checkout to a reviewed patch: setup step, agent loop, the
repository's tests, the diff, and the review that holds back secrets and protected paths.
Shared by `shipmate run` and runs started from GitHub (bot/runs/job.py)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from bot.agent.budget import Budget
from bot.agent.ledger import Usage, cost_usd
from bot.agent.loop import Agent
from bot.agent.model import Model, Reply
from bot.agent.prompts import Brief, conventions, system_prompt, user_prompt
from bot.agent.tools import Tools
from bot.agent.transcript import Transcript
from bot.config import RepoConfig
from bot.runs.change import Change, ChangeTooLarge, ReviewError
from bot.runs.review import measure_scope, review, scope_budget, take_change
from bot.runs.scope import Scope, ScopeBudget
from bot.sandbox import open_sandbox
from bot.sandbox.base import ALLOW_BY_REPO_CONFIG, ImageRoot, Limits, SandboxSpec
from bot.sandbox.bwrap import BwrapSandbox
from bot.sandbox.checkout import Checkout
from bot.sandbox.environment import Environments
from bot.sandbox.image import ImageError
from bot.sandbox.setup import DependencyCache, run_setup
from bot.security.redact import mask
from bot.security.tree_scan import scan_tree

log = structlog.get_logger("shipmate.execute")


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


HEADER_OR_DATA = re.compile(
    r"""(-H|--header|-d|--data(?:-\w+)?|-F|--form|-u|--user|--cookie|-b)[=\s]+('[^']*'|"[^"]*"|\S+)"""
)
URL_QUERY = re.compile(r"\?[^\s'\"]*")


def shown_command(argv: tuple[str, ...] | None, limit: int = 200) -> str | None:
    """A command as a person would read it: a shell's script rather than `bash -lc`."""
    if not argv:
        return None
    text = argv[-1] if argv[:1] == ("bash",) and len(argv) >= 3 else " ".join(argv)
    text = mask(" ".join(text.split()))
    # What a request would carry stays out: header and data arguments, URL queries.
    text = HEADER_OR_DATA.sub(lambda m: f"{m.group(1)} …", text)
    text = URL_QUERY.sub("?…", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


async def execute(
    *,
    checkout: Checkout,
    base_sha: str,
    brief: Brief,
    config: RepoConfig,
    model: Model,
    budget: Budget,
    transcript: Transcript,
    store: Any | None,
    run_id: str,
    allow_hosts: Sequence[str] = (),
    # NAME -> (real value, hosts): what the operator's declarations granted this run
    # (bot/sandbox/operator_secrets.py); none for a fork.
    secrets: Mapping[str, tuple[str, Sequence[str]]] | None = None,
    # Ranges beyond the public internet the egress proxy may reach: the operator's setting.
    allow_networks: Sequence[str] = (),
    ca_dir: Path | None = None,
    on_tests: Callable[[], Awaitable[None]] | None = None,
    # Where the image a repository's `environment:` names comes from; None: host folders only.
    environments: Environments | None = None,
    # How the egress proxy's refusal says a host can be allowed.
    allow_hint: str = ALLOW_BY_REPO_CONFIG,
) -> Execution:
    done = Execution()
    secrets = secrets or {}
    transcript.known = (*transcript.known, *(value for value, _ in secrets.values()))
    deps = (
        DependencyCache(checkout.cache_root / "deps").mount(checkout.repo_key, checkout.tree)
        if config.setup
        else None
    )
    layered_deps, rw_deps = deps.binds() if deps is not None else ({}, {})
    found = await asyncio.to_thread(scan_tree, checkout.tree)
    transcript.known = (*transcript.known, *found.values)
    if found.findings:
        where = [asdict(f) for f in found.findings]
        transcript.write("checkout_scan", findings=where)
        log.warning("checkout.secrets", run_id=run_id, findings=where)
    holding = contextlib.AsyncExitStack()  # the image, kept from eviction while it runs
    try:
        image = await _environment(holding, environments, config, checkout.tree)
    except ImageError as exc:
        done.reason = f"the environment could not be prepared: {exc}"
        return done
    if image is not None:  # what the task ran on, exactly
        transcript.write("environment", digest=image.digest)
    spec = SandboxSpec(
        image=image,
        workspace=checkout.tree,
        overlay_lower=checkout.tree,
        ro_binds=checkout.ro_binds,
        rw_binds=rw_deps,
        layered_binds=layered_deps,
        allow_hosts=tuple(allow_hosts) + tuple(config.network.allow),
        secrets=secrets,
        allow_networks=tuple(allow_networks),
        guarded=tuple(sorted(found.values)),
        limits=Limits(timeout_seconds=max(1.0, budget.timeout_seconds)),
        task_id=run_id,
        allow_hint=allow_hint,
    )

    def record(seq: int, reply: Reply) -> None:
        if store is not None:
            u = reply.usage
            store.record_model_call(
                run_id,
                seq,
                model.name,
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                cache_creation_input_tokens=u.cache_creation_input_tokens,
                cache_read_input_tokens=u.cache_read_input_tokens,
                cost_usd=cost_usd(u, model.name),
                duration_ms=reply.duration_ms,
            )

    bound = structlog.contextvars.get_contextvars()
    started: list[BwrapSandbox] = []

    def egress(event: Any) -> None:
        running = started[0].running if started else None
        if store is not None:
            store.append_egress(
                task_id=event.task_id,
                host=event.host,
                port=event.port,
                method=event.method,
                bytes_out=event.bytes_out,
                bytes_in=event.bytes_in,
                allowed=event.allowed,
                reason=event.reason,
                at=event.at.timestamp(),
                delivery_id=bound.get("delivery_id"),
                command=shown_command(running),
            )

    async with holding, open_sandbox(spec, audit=egress, ca_dir=ca_dir) as sandbox:
        started.append(sandbox)
        if deps is not None:
            results = await run_setup(
                sandbox, config.setup, timeout_seconds=max(1.0, budget.remaining())
            )
            if results[-1].exit_code != 0:
                done.reason = f"the setup command failed: {config.setup[len(results) - 1]}"
                return done
            deps.complete()
        tools = Tools(sandbox, known_secrets=found.values)
        agent = Agent(model, tools, budget, transcript=transcript, on_call=record)
        outcome = await agent.run(
            system_prompt(brief, conventions(checkout.tree)),
            user_prompt(brief),
            plan_only=brief.plan_only,
        )
        done.status, done.reason = outcome.status, outcome.reason
        done.plan, done.summary, done.steps = outcome.plan, outcome.summary, outcome.steps
        done.usage, done.cost_usd = agent.ledger.usage, agent.ledger.cost
        try:
            if outcome.status == "completed" and not brief.plan_only:
                await take(done, sandbox, checkout, base_sha)
                # Shipmate's own test run, change or none: what the model said is not proof.
                if done.status == "completed" and config.test:
                    await run_tests(done, sandbox, config.test, budget, on_tests)
        except BaseException:
            done.discard()
            raise
        done.sandbox_wall_seconds, done.sandbox_cpu_seconds = (
            sandbox.wall_seconds,
            sandbox.cpu_seconds,
        )
    judge(done, config)
    if done.status == "completed":
        done.reason = ""
    return done


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
