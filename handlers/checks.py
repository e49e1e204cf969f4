"""Failing CI on Shipmate's pull requests: workflow runs, check suites and check runs of other
apps, and commit statuses.

GitHub Actions reports one failure three ways (workflow_run, check_suite, check_run); only
workflow_run is acted on for Actions, so one failure is one repair and one attempt."""

from __future__ import annotations

from typing import Any

from bot.github.client import RepoClient, WorkflowRun
from bot.runs.repairs import Failure, repair, same_host, shipmate_pull
from bot.triggers.ci_history import job_history, job_log_header
from bot.triggers.ci_log import excerpt
from bot.triggers.ci_rerun import rerun_before, rerun_flaky
from bot.triggers.ci_verdict import classify
from bot.triggers.context import Context
from bot.triggers.events import CheckItem, CheckRun, CheckSuite, PullNumber, Status
from bot.triggers.events import WorkflowRun as WorkflowRunEvent
from bot.triggers.routing import Router

router = Router()
FAILED = ("failure", "timed_out")
ACTIONS = "github-actions"


async def _ours(context: Context, pulls: list[PullNumber]) -> dict[str, Any] | None:
    repo = await context.repo()
    for entry in pulls:
        pull = await shipmate_pull(context, repo, entry.number)
        if pull is not None:
            return pull
    return None


async def _failed_head(context: Context, item: CheckItem) -> dict[str, Any] | None:
    """The Shipmate pull request whose current head `item` (a check run, check suite or
    workflow run) failed on."""
    if item.conclusion not in FAILED:
        return None
    pull = await _ours(context, item.pull_requests)
    return pull if pull is not None and pull["head"]["sha"] == item.head_sha else None


async def _repairable(context: Context, item: CheckItem) -> dict[str, Any] | None:
    """The Shipmate pull request a failed check of another app is about, if any."""
    if _not_for_us(context, item):
        return None
    return await _failed_head(context, item)


def _not_for_us(context: Context, item: CheckItem) -> bool:
    """Our own checks, and Actions' checks (its workflow_run covers them)."""
    app = item.app.slug if item.app else None
    return app in (ACTIONS, context.settings.app_slug or "shipmate")


async def _repair_check(
    context: Context,
    repo: RepoClient,
    pull: dict[str, Any],
    name: str,
    log: str,
    passing: str | None = None,
) -> None:
    """A repair run for the failed check `name` of `pull`, from its log."""
    failure = Failure(check=name, log=log, label=f"CI log of {name}", passing=passing)
    await repair(context, repo, pull, failure)


@router.register("check_run", action="completed")
async def check_run_failed(context: Context) -> None:
    run = CheckRun.model_validate(context.payload).check_run
    pull = await _repairable(context, run)
    if pull is not None:
        await _repair_check(context, await context.repo(), pull, run.name, run.output.joined())


@router.register("check_suite", action="completed")
async def check_suite_failed(context: Context) -> None:
    suite = CheckSuite.model_validate(context.payload).check_suite
    pull = await _repairable(context, suite)
    if pull is None:
        return
    repo = await context.repo()
    failed = [r for r in await repo.suite_check_runs(suite.id) if r.conclusion in FAILED]
    if not failed:
        return
    logs = "\n".join(
        f"== {r.name} ==\n" + "\n".join(x for x in (r.title, r.summary, r.text) if x)
        for r in failed
    )
    # Named after the first failed run, as its own check_run event would be: one attempt.
    await _repair_check(context, repo, pull, failed[0].name, logs)


async def _failed_jobs(repo: RepoClient, run_id: int) -> tuple[list[str], str]:
    """The names of the run's failed jobs and their logs, one after another."""
    names, logs = [], []
    for job in await repo.workflow_jobs(run_id):
        if job.conclusion in FAILED:
            names.append(job.name)
            logs.append(f"{job_log_header(job.name)}\n{await repo.job_log(job.id) or ''}")
    return names, "\n".join(logs)


@router.register("workflow_run", action="completed")
async def workflow_run_failed(context: Context) -> None:
    """Flaky (passed on this commit, the network or runner failed, nothing the PR touched):
    re-run the failed jobs once. Broken: a repair run, told what differs from the last pass."""
    event_run = WorkflowRunEvent.model_validate(context.payload).workflow_run
    pull = await _failed_head(context, event_run)
    if pull is None:
        return
    repo = await context.repo()
    run = WorkflowRun.of(context.payload.get("workflow_run") or {})
    if await rerun_before(context, repo, int(pull["number"]), run):
        return
    name = run.name or "workflow"
    failed, log = await _failed_jobs(repo, run.id)
    base = str((pull.get("base") or {}).get("ref") or "") or None
    history = await job_history(repo, run, failed, base)
    verdict = classify(
        excerpt(log, passing=history.passing_log).text.splitlines(),
        conclusion=run.conclusion,
        passed_on_same_commit=history.passed_on_same_commit,
        changed_files=await repo.pull_files(int(pull["number"])),
    )
    context.log.info("ci.verdict", kind=verdict.kind, reason=verdict.reason, green=history.source)
    if verdict.flaky and await rerun_flaky(context, repo, int(pull["number"]), run, verdict):
        return
    await _repair_check(context, repo, pull, name, log, passing=history.passing_log)


@router.register("status")
async def status_failed(context: Context) -> None:
    status = Status.model_validate(context.payload)
    if status.state not in ("failure", "error"):
        return
    repo = await context.repo()
    for branch in status.branches:
        for candidate in await repo.open_pulls_for_branch(branch.name):
            pull = await shipmate_pull(context, repo, candidate.number)
            if pull is None or pull["head"]["sha"] != status.sha:
                continue
            # The target URL is followed only when it is GitHub itself; the description always.
            log = status.description or ""
            target = status.target_url
            if same_host(target, context.settings.github_api_url):
                log += f"\n(details: {target})"
            failure = Failure(check=status.context, log=log, label="commit status")
            await repair(context, repo, pull, failure)
            return
