"""One agent run on a local git repository, outside GitHub: what `shipmate run` and the
evals run.

Checkout from the cache -> sandbox (overlay over the cached tree) -> agent loop -> diff ->
review (secrets, protected paths) -> commit on a new `shipmate/…` branch of the repository.
The command's edge (its flags, the model, what it prints) is bot/runs/local.py.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from bot.agent.budget import Budget, Caps
from bot.agent.ledger import Usage
from bot.agent.model import Model
from bot.agent.prompts import Brief
from bot.agent.transcript import Transcript
from bot.config import RepoConfig, RepoConfigError, Settings, parse_repo_config
from bot.runs.execute import Inputs, execute
from bot.runs.execution import Execution, record_finish
from bot.runs.publish import commit_message, free_branch, publish
from bot.sandbox.base import SandboxUnavailable
from bot.sandbox.checkout import Checkout, CheckoutCache, CheckoutError, git
from bot.sandbox.environment import Environments
from bot.sandbox.operator_secrets import Declaration, Granted, grant
from bot.security.files import read_repo_file

log = structlog.get_logger("shipmate.run")


@dataclass
class RunResult:
    status: str
    branch: str | None = None
    diff: str = ""
    steps: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    transcript: str | None = None
    reason: str = ""
    plan: str = ""
    summary: str = ""
    run_id: str = ""
    sandbox_wall_seconds: float = 0.0
    sandbox_cpu_seconds: float = 0.0

    def contract(self) -> dict[str, Any]:
        """The JSON `shipmate run --json` prints (shared/ARCHITECTURE.md), plus the sandbox's
        wall and CPU time."""
        data: dict[str, Any] = {
            "status": self.status,
            "branch": self.branch,
            "diff": self.diff,
            "steps": self.steps,
            "usage": self.usage.as_dict(),
            "cost_usd": round(self.cost_usd, 6),
            "transcript": self.transcript,
            "sandbox_wall_seconds": round(self.sandbox_wall_seconds, 3),
            "sandbox_cpu_seconds": round(self.sandbox_cpu_seconds, 3),
            "run_id": self.run_id,
        }
        if self.reason:
            data["reason"] = self.reason
        return data

    def take(self, done: Execution) -> None:
        """How the execution went, its cost and its diff."""
        self.status, self.reason = done.status, done.reason
        self.plan, self.summary, self.steps = done.plan, done.summary, done.steps
        self.usage, self.cost_usd = done.usage, done.cost_usd
        self.sandbox_wall_seconds = done.sandbox_wall_seconds
        self.sandbox_cpu_seconds = done.sandbox_cpu_seconds
        self.diff = done.patch


CONFIG_BYTES = 256 * 1024
ALLOW_LOCALLY = (
    "add it to network.allow in .github/shipmate.yml, or pass --allow-host {host}:{port}"
)


def repo_config_text(tree: Path) -> str | None:
    """`.github/shipmate.yml` of a checkout, read as a regular file beneath it (a symlink is no
    config: it is refused with a reason, never followed); None when there is none."""
    path = ".github/shipmate.yml"
    found = read_repo_file(tree, path, CONFIG_BYTES)
    if found is None:
        if os.path.lexists(tree / path):
            raise RepoConfigError("not a regular file (a symlink?), so it was not read")
        return None
    if found.truncated:
        raise RepoConfigError(f"larger than {CONFIG_BYTES // 1024} KiB")
    return found.text()


def settings_caps(settings: Settings) -> Caps:
    return Caps(settings.max_steps, settings.max_cost_usd, settings.run_timeout_seconds)


@dataclass
class LocalRun:
    """One `shipmate run`. The limits given here (CLI flags; None: not given) win over the
    repository's config, which wins over `defaults` (the settings)."""

    repo: Path
    brief: Brief
    max_steps: int | None
    max_cost_usd: float | None
    timeout_seconds: float | None
    transcript: Path | None
    allow_hosts: tuple[str, ...] = ()
    # The operator's secret declarations and egress ranges (settings; never the repository).
    declared: Mapping[str, Declaration] = field(default_factory=dict)
    allow_networks: tuple[str, ...] = ()
    cancelled: Callable[[], bool] = lambda: False
    defaults: Caps = field(default_factory=lambda: settings_caps(Settings.model_construct()))
    # The id the run is recorded under: `shipmate audit --run ID` and `shipmate runs` show it.
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def budget(self, config: RepoConfig) -> Budget:
        """The limits given here, else the repository's, else the defaults; its clock starts
        now."""
        return Budget.layered(
            [
                Caps(self.max_steps, self.max_cost_usd, self.timeout_seconds),
                Caps(config.max_steps, config.max_cost_usd, config.timeout_seconds),
                self.defaults,
            ],
            self.cancelled,
        )

    def brief_for(self, config: RepoConfig) -> Brief:
        """The brief, with the repository's instructions and test command where it has none."""
        return replace(
            self.brief,
            instructions=self.brief.instructions or config.instructions,
            test_command=self.brief.test_command or config.test,
        )


async def run_local(
    request: LocalRun,
    *,
    model: Model,
    cache: CheckoutCache,
    store: Any | None = None,
    environments: Environments | None = None,
) -> RunResult:
    run_id = request.run_id
    repo = request.repo.resolve()
    try:
        base_sha = git("rev-parse", "HEAD", cwd=repo).strip()
    except CheckoutError as exc:
        reason = f"{repo} is not a git repository with a commit: {exc}"
        return RunResult("failed", reason=reason, run_id=run_id)
    transcript_path = str(request.transcript) if request.transcript else None
    result = RunResult("failed", transcript=transcript_path, run_id=run_id)
    if store is not None:  # recorded from the start: a run refused later has its id too
        store.record_run(
            run_id, repo=str(repo), kind="run", base_sha=base_sha, transcript_path=transcript_path
        )
    checkout = await asyncio.to_thread(cache.tree, str(repo), base_sha)
    try:
        done = await _execute_on(
            request, repo, checkout, base_sha, model, cache, store, environments
        )
        if isinstance(done, str):
            result.reason = done
        else:
            result.take(done)
            await _commit(repo, request.brief, done, result)
    except SandboxUnavailable as exc:
        result.reason = f"the sandbox could not start: {exc}"
    finally:
        cache.release(checkout)
        if store is not None:
            record_finish(store, run_id, result, status=result.status, branch=result.branch)
    return result


def _configured(request: LocalRun, repo: Path, tree: Path) -> tuple[RepoConfig, Granted] | str:
    """The checkout's config and the secrets it is granted, or why the run cannot go on."""
    try:
        config = parse_repo_config(repo_config_text(tree))
    except RepoConfigError as exc:
        return str(exc)
    granted = grant(
        request.declared,
        config.secrets,
        repository=str(repo),
        installation=None,
        environ=os.environ,
    )
    return granted.reason if granted.refused else (config, granted)


async def _execute_on(
    request: LocalRun,
    repo: Path,
    checkout: Checkout,
    base_sha: str,
    model: Model,
    cache: CheckoutCache,
    store: Any | None,
    environments: Environments | None,
) -> Execution | str:
    """The task executed on `checkout`, or why the config or the secrets it requests refuse
    the run."""
    configured = _configured(request, repo, checkout.tree)
    if isinstance(configured, str):
        return configured
    config, granted = configured
    return await execute(
        Inputs(
            checkout=checkout,
            base_sha=base_sha,
            brief=request.brief_for(config),
            config=config,
            model=model,
            budget=request.budget(config),
            transcript=Transcript(request.transcript),
            store=store,
            run_id=request.run_id,
            allow_hosts=request.allow_hosts,
            secrets=granted.secrets,
            allow_networks=request.allow_networks,
            ca_dir=cache.root / "ca",
            environments=environments,
            allow_hint=ALLOW_LOCALLY,
        )
    )


async def _commit(repo: Path, brief: Brief, done: Execution, result: RunResult) -> None:
    """A completed run's change, committed on a new `shipmate/…` branch of the repository;
    the change is discarded after."""
    try:
        if done.change is not None and result.status == "completed":
            branch = free_branch(repo, brief.task)
            await asyncio.to_thread(
                publish,
                done.change,
                branch,
                commit_message(brief.task, done.summary),
                push_to=str(repo),
            )
            result.branch = branch
        elif result.status == "completed" and not brief.plan_only:
            result.reason = "the run made no change"
    except CheckoutError as exc:
        result.status, result.reason = "failed", f"the change could not be committed: {exc}"
    finally:
        done.discard()
