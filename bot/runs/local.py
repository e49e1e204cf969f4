"""`shipmate run` at the command line: the flags and settings become a `LocalRun`
(bot/runs/local_run.py), run with the configured model, and its result is printed, as text or as
the JSON of shared/ARCHITECTURE.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path

from bot.agent.model import AnthropicModel, ModelUnavailable, missing_credential
from bot.agent.prompts import Brief
from bot.config import ConfigError, Settings
from bot.runs.local_run import LocalRun, RunResult, run_local, settings_caps
from bot.sandbox.checkout import CheckoutCache
from bot.sandbox.environment import Environments
from bot.sandbox.operator_secrets import load as load_declarations
from bot.security.redact import mask


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
    store = Store.from_settings(settings)
    store.migrate()
    request = local_request(args, settings, repo, run_id)
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
    print_result(result, as_json=args.json)
    return 0 if result.status == "completed" else 1


def local_request(
    args: argparse.Namespace, settings: Settings, repo: Path, run_id: str
) -> LocalRun:
    """The run the flags ask for, with the operator's limits, secrets and egress ranges."""
    transcript = (
        Path(args.transcript) if args.transcript else settings.data_dir / "runs" / f"{run_id}.jsonl"
    )
    return LocalRun(
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


def print_result(result: RunResult, *, as_json: bool) -> None:
    # What the model wrote and the reasons pass the secret scanner's redaction on the way out;
    # a held-back change's diff is never kept (bot/runs/execution.py).
    result.reason, result.plan = mask(result.reason), mask(result.plan)
    if as_json:
        print(json.dumps(result.contract()))
        return
    print(f"run: {result.run_id} (shipmate audit --run {result.run_id})")
    print(f"status: {result.status}" + (f" ({result.reason})" if result.reason else ""))
    if result.plan:
        print(f"plan:\n{result.plan}")
    if result.branch:
        print(f"branch: {result.branch}")
    print(f"steps: {result.steps}, cost: ${result.cost_usd:.4f}, transcript: {result.transcript}")
    if result.diff:
        print(result.diff)
