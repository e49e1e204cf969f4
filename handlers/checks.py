"""Failing CI on Shipmate's pull requests: check runs, workflow runs and commit statuses."""

from __future__ import annotations

from typing import Any

from bot.context import Context
from bot.repairs import repair, same_host, shipmate_pull
from bot.routing import Router

router = Router()
FAILED = ("failure", "timed_out")


async def _ours(context: Context, pulls: list[dict[str, Any]]) -> dict[str, Any] | None:
    repo = await context.repo()
    for entry in pulls:
        pull = await shipmate_pull(context, repo, int(entry["number"]))
        if pull is not None:
            return pull
    return None


@router.register("check_run", action="completed")
async def check_run_failed(context: Context) -> None:
    run = context.payload.get("check_run") or {}
    app = (run.get("app") or {}).get("slug")
    if run.get("conclusion") not in FAILED or app == (context.settings.app_slug or "shipmate"):
        return
    pull = await _ours(context, run.get("pull_requests") or [])
    if pull is None or pull["head"]["sha"] != run.get("head_sha"):
        return
    repo = await context.repo()
    log: str | None = None
    if app == "github-actions":
        log = await repo.job_log(int(run["id"]))
    if log is None:
        output = run.get("output") or {}
        log = "\n".join(str(output.get(k) or "") for k in ("title", "summary", "text"))
    await repair(
        context,
        repo,
        pull,
        check=str(run.get("name")),
        log=log,
        label=f"CI log of {run.get('name')}",
    )


@router.register("workflow_run", action="completed")
async def workflow_run_failed(context: Context) -> None:
    run = context.payload.get("workflow_run") or {}
    if run.get("conclusion") not in FAILED:
        return
    pull = await _ours(context, run.get("pull_requests") or [])
    if pull is None or pull["head"]["sha"] != run.get("head_sha"):
        return
    repo = await context.repo()
    logs = []
    for job in await repo.workflow_jobs(int(run["id"])):
        if job.conclusion in FAILED:
            logs.append(f"== job {job.name} ==\n{await repo.job_log(job.id) or ''}")
    name = str(run.get("name") or "workflow")
    await repair(context, repo, pull, check=name, log="\n".join(logs), label=f"CI log of {name}")


@router.register("status")
async def status_failed(context: Context) -> None:
    payload = context.payload
    if payload.get("state") not in ("failure", "error"):
        return
    repo = await context.repo()
    for branch in payload.get("branches") or []:
        for candidate in await repo.open_pulls_for_branch(str(branch.get("name"))):
            pull = await shipmate_pull(context, repo, candidate.number)
            if pull is None or pull["head"]["sha"] != payload.get("sha"):
                continue
            # The target URL is followed only when it is GitHub itself; the description always.
            log = str(payload.get("description") or "")
            target = payload.get("target_url")
            if same_host(target, context.settings.github_api_url):
                log += f"\n(details: {target})"
            await repair(
                context,
                repo,
                pull,
                check=str(payload.get("context")),
                log=log,
                label="commit status",
            )
            return
