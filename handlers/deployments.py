"""A failed deploy health check (`deployment_status` failure or error) of a Shipmate change —
its open PR's branch, or the merge commit of a Shipmate PR — becomes a repair run that opens a
follow-up pull request from what was deployed, within the repair caps; it never pushes to the
default branch. The deploy log is fetched only from hosts the repository lists."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.github.client import RepoClient
from bot.runs.repairs import is_ours, repair, shipmate_pull
from bot.triggers.context import Context
from bot.triggers.routing import Router

router = Router()
LOG_BYTES = 2_000_000


def allowed(url: str | None, hosts: list[str]) -> bool:
    return bool(url) and (urlsplit(url).hostname or "") in hosts


async def fetch_log(url: str, hosts: list[str]) -> str:
    """The log at `url` if its host is listed in the repo config (no redirects elsewhere)."""
    if not allowed(url, hosts):
        return ""
    try:
        async with httpx.AsyncClient(timeout=15, follow_redirects=False) as client:
            response = await client.get(url)
    except httpx.HTTPError:
        return ""
    return response.text[:LOG_BYTES] if response.status_code == 200 else ""


async def deployed_pull(
    context: Context, repo: RepoClient, deployment: dict[str, Any]
) -> dict[str, Any] | None:
    """The Shipmate PR this deployment shipped: the open PR of a shipmate/ ref, or the merged
    Shipmate PR the deployed commit came from (GitHub's commits/{sha}/pulls)."""
    ref, sha = str(deployment.get("ref") or ""), str(deployment.get("sha") or "")
    if ref.startswith("shipmate/"):
        for candidate in await repo.open_pulls_for_branch(ref):
            pull = await shipmate_pull(context, repo, candidate.number)
            if pull is not None:
                return pull
    if not sha:
        return None
    for pull in await repo.pulls_for_commit(sha):
        if is_ours(context, pull) and (pull.get("merged_at") or pull.get("state") == "open"):
            return pull
    return None


@router.register("deployment_status", action="created")
async def deployment_failed(context: Context) -> None:
    status = context.payload.get("deployment_status") or {}
    deployment = context.payload.get("deployment") or {}
    if status.get("state") not in ("failure", "error"):
        return
    repo = await context.repo()
    pull = await deployed_pull(context, repo, deployment)
    if pull is None:
        return
    hosts = (await context.config()).deploy_log_hosts
    url = next(
        (u for u in (status.get("log_url"), status.get("target_url")) if allowed(u, hosts)), ""
    )
    log = await fetch_log(url, hosts) if url else ""
    environment = str(deployment.get("environment") or "deploy")
    number = int(pull["number"])
    description = str(status.get("description") or "The deploy failed without a description.")
    await repair(
        context,
        repo,
        pull,
        check=f"deploy to {environment}",
        log=log,
        note=description,
        label=f"deploy log ({environment})",
        follow_up={
            "base_sha": str(deployment.get("sha") or pull["head"]["sha"]),
            "title": f"Fix the failed {environment} deploy of #{number}",
            "task": f"The deploy health check for `{environment}` failed after #{number} "
            "was deployed. Make the smallest change that fixes it.",
        },
    )
