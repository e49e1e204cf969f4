"""`shipmate run`: one agent run on a local git repository, outside GitHub.

Checkout from the cache -> sandbox (overlay over the cached tree) -> agent loop -> diff ->
review (secrets, protected paths) -> commit on a new `shipmate/…` branch of the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from bot.agent.budget import Budget, Caps
from bot.agent.ledger import Usage
from bot.agent.model import AnthropicModel, Model, ModelUnavailable, missing_credential
from bot.agent.prompts import Brief
from bot.agent.transcript import Transcript
from bot.config import ConfigError, RepoConfigError, Settings, parse_repo_config
from bot.runs.execute import execute
from bot.runs.publish import commit_message, free_branch, publish
from bot.sandbox.base import SandboxUnavailable
from bot.sandbox.checkout import CheckoutCache, CheckoutError, git
from bot.sandbox.environment import Environments
from bot.sandbox.operator_secrets import Declaration, grant
from bot.sandbox.operator_secrets import load as load_declarations
from bot.security.files import read_repo_file
from bot.security.redact import mask

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
        try:
            config = parse_repo_config(repo_config_text(checkout.tree))
        except RepoConfigError as exc:
            result.reason = str(exc)
            return result
        granted = grant(
            request.declared,
            config.secrets,
            repository=str(repo),
            installation=None,
            environ=os.environ,
        )
        if granted.refused:
            result.reason = granted.reason
            return result
        brief = replace(
            request.brief,
            instructions=request.brief.instructions or config.instructions,
            test_command=request.brief.test_command or config.test,
        )
        budget = Budget.layered(
            [
                Caps(request.max_steps, request.max_cost_usd, request.timeout_seconds),
                Caps(config.max_steps, config.max_cost_usd, config.timeout_seconds),
                request.defaults,
            ],
            request.cancelled,
        )
        done = await execute(
            checkout=checkout,
            base_sha=base_sha,
            brief=brief,
            config=config,
            model=model,
            budget=budget,
            transcript=Transcript(request.transcript),
            store=store,
            run_id=run_id,
            allow_hosts=request.allow_hosts,
            secrets=granted.secrets,
            allow_networks=request.allow_networks,
            ca_dir=cache.root / "ca",
            environments=environments,
            allow_hint=ALLOW_LOCALLY,
        )
        result.status, result.reason = done.status, done.reason
        result.plan, result.summary, result.steps = done.plan, done.summary, done.steps
        result.usage, result.cost_usd = done.usage, done.cost_usd
        result.sandbox_wall_seconds = done.sandbox_wall_seconds
        result.sandbox_cpu_seconds = done.sandbox_cpu_seconds
        result.diff = done.patch
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
    except SandboxUnavailable as exc:
        result.reason = f"the sandbox could not start: {exc}"
    finally:
        cache.release(checkout)
        if store is not None:
            store.update_run(
                run_id,
                status=result.status,
                reason=result.reason,
                branch=result.branch,
                plan=result.plan,
                steps=result.steps,
                cost_usd=result.cost_usd,
                finished_at=time.time(),
                sandbox_wall_seconds=result.sandbox_wall_seconds,
                sandbox_cpu_seconds=result.sandbox_cpu_seconds,
                **result.usage.as_dict(),
            )
    return result


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db.store import Store

    problem = missing_credential(settings)
    if problem is not None:
        raise ConfigError(*problem)
    repo = Path(args.repo)
    if not (repo / ".git").exists():
        print(f"shipmate run: {repo} is not a git repository", file=sys.stderr)
        return 2
    run_id = uuid.uuid4().hex[:12]
    transcript = (
        Path(args.transcript) if args.transcript else settings.data_dir / "runs" / f"{run_id}.jsonl"
    )
    store = Store.from_settings(settings)
    store.migrate()
    request = LocalRun(
        repo=repo,
        brief=Brief(task=args.brief),
        max_steps=args.max_steps,
        max_cost_usd=args.max_cost,
        timeout_seconds=args.timeout,
        transcript=transcript,
        allow_hosts=tuple(args.allow_host),
        declared=load_declarations(settings),
        allow_networks=tuple(settings.egress_allow_networks),
        defaults=settings_caps(settings),
        run_id=run_id,
    )
    cache = CheckoutCache(settings.data_dir / "cache")

    async def go() -> RunResult:
        model = AnthropicModel.from_settings(settings)
        try:
            environments = Environments.from_settings(settings)
            return await run_local(
                request, model=model, cache=cache, store=store, environments=environments
            )
        finally:
            await model.close()

    try:
        result = asyncio.run(go())
    except ModelUnavailable as exc:
        print(f"shipmate run: {exc}", file=sys.stderr)
        return 2
    finally:
        store.dispose()
    # What the model wrote and the reasons pass the secret scanner's redaction on the way out;
    # a held-back change's diff is never kept (bot/runs/execute.py).
    result.reason, result.plan = mask(result.reason), mask(result.plan)
    if args.json:
        print(json.dumps(result.contract()))
    else:
        print(f"run: {result.run_id} (shipmate audit --run {result.run_id})")
        print(f"status: {result.status}" + (f" ({result.reason})" if result.reason else ""))
        if result.plan:
            print(f"plan:\n{result.plan}")
        if result.branch:
            print(f"branch: {result.branch}")
        print(
            f"steps: {result.steps}, cost: ${result.cost_usd:.4f}, transcript: {result.transcript}"
        )
        if result.diff:
            print(result.diff)
    return 0 if result.status == "completed" else 1
