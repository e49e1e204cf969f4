"""A run's start: the repository's config and the secrets the operator grants it, the commit it
starts from, its record and audit entry, the sticky comment saying it plans (and, on a pull
request, the in-progress check run), the checkout; then its work (bot/runs/work.py) and its end
(bot/runs/finish.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from bot.config import ConfigError, RepoConfig, RepoConfigError, Settings, parse_repo_config
from bot.github.client import RepoClient
from bot.jobs.worker import JobContext
from bot.runs.checks import start_check
from bot.runs.context import READ_ONLY, Run, lock_key
from bot.runs.finish import finish
from bot.runs.work import run_brief, run_budget, work
from bot.sandbox import operator_secrets
from bot.sandbox.checkout import Checkout

log = structlog.get_logger("shipmate.runs")


def run_secrets(
    settings: Settings, config: RepoConfig, repo_name: str, installation_id: int, fork: bool
) -> operator_secrets.Granted:
    """The secrets the repository requests, as the operator's declarations grant them; a fork's
    code never runs with secrets, so its requests are not even looked up."""
    if fork or not config.secrets:
        return operator_secrets.Granted()
    try:
        declared = operator_secrets.load(settings)
    except ConfigError as exc:
        log.error("secrets.unreadable", error=str(exc))
        return operator_secrets.Granted(
            refused=("the operator's declarations cannot be read (Shipmate's log says why)",)
        )
    return operator_secrets.grant(
        declared,
        config.secrets,
        repository=repo_name,
        installation=installation_id,
        environ=os.environ,
    )


@dataclass(frozen=True)
class Target:
    """What a run reads of its repository before it starts."""

    clone_url: str
    default_branch: str
    config: RepoConfig


async def read_target(run: Run, reader: RepoClient) -> Target:
    """The repository's clone address, default branch and `.github/shipmate.yml` on it; raises
    `RepoConfigError` when that config is not valid."""
    repository = await reader.repository()
    default_branch = str(repository["default_branch"])
    config = parse_repo_config(await reader.file_text(".github/shipmate.yml", default_branch))
    return Target(clone_url_of(run, repository), default_branch, config)


def clone_url_of(run: Run, repository: Mapping[str, Any]) -> str:
    fallback = f"{run.deps.settings.github_api_url}/{run.repo_name}.git"
    return str(repository.get("clone_url") or fallback)


async def check_out(run: Run, clone_url: str, sha: str) -> Checkout:
    """`sha` from the checkout cache, fetched with a read-only token; the caller releases it."""
    read_token = await run.token(READ_ONLY)
    return await asyncio.to_thread(run.deps.cache.tree, clone_url, sha, read_token)


async def base_of(run: Run, reader: RepoClient, default_branch: str) -> str | None:
    """The commit the run starts from: a pull request's head, what a deploy follow-up was
    deployed from, the commit an earlier attempt of the job started from (a retry's tree and
    the commit it builds on share one base), else the default branch's head (None when it has
    no commits)."""
    task = run.request.task
    if task.pr is not None:
        return task.pr.head_sha
    if task.base_sha:
        return task.base_sha
    if run.earlier_base:
        return run.earlier_base
    return await reader.branch_sha(default_branch)


async def record_start(run: Run, base_sha: str) -> None:
    """The run's record and its audit entry; the sticky comment says it plans, and a pull
    request's head shows it working."""
    store, request = run.deps.store, run.request
    await asyncio.to_thread(
        store.record_run,
        run.run_id,
        repo=run.repo_name,
        number=run.number,
        kind=run.verb,
        base_sha=base_sha,
        delivery_id=request.delivery_id,
        comment_id=run.sticky.comment_id,
    )
    await asyncio.to_thread(
        store.append_audit,
        "run.start",
        run_id=run.run_id,
        delivery_id=request.delivery_id,
        actor=request.actor,
        target=lock_key(run.repo_name, run.number),
        detail={"verb": run.verb, "task": request.task.fields()},
    )
    recorded = run.sticky.comment_id
    await run.sticky.show(run.progress("planning"))
    if run.sticky.comment_id != recorded:  # posted (or found again) just now
        await asyncio.to_thread(store.update_run, run.run_id, comment_id=run.sticky.comment_id)
    if request.task.pr is not None:
        await start_check(run, base_sha)


async def start(run: Run, reader: RepoClient, context: JobContext) -> None:
    try:
        target = await read_target(run, reader)
    except RepoConfigError as exc:
        await run.fail(f"Shipmate cannot start: {exc}")
        return
    config, task = target.config, run.request.task
    granted = run_secrets(run.deps.settings, config, run.repo_name, run.installation_id, task.fork)
    if granted.refused:
        await run.fail(f"Shipmate cannot start: {granted.reason}")
        return
    run.clean.add(*granted.values)
    issue = await reader.issue(run.number)
    base_sha = await base_of(run, reader, target.default_branch)
    if base_sha is None:
        await run.fail(f"The default branch {target.default_branch} has no commits.")
        return
    await record_start(run, base_sha)
    checkout = await check_out(run, target.clone_url, base_sha)
    brief = run_brief(run, issue, config)
    budget = run_budget(run, config, context)
    done = await work(run, checkout, base_sha, brief, budget, config, granted)
    try:
        await finish(run, done, base_sha, target.default_branch, issue)
    finally:
        done.discard()
