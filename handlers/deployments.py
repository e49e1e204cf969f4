"""A failed deploy health check (`deployment_status` failure or error) of a Shipmate change —
its open PR's branch, or the merge commit of a Shipmate PR — becomes a repair run that opens a
follow-up pull request from what was deployed, within the repair caps; it never pushes to the
default branch. The deploy log is fetched only from hosts the repository lists."""

from __future__ import annotations

from typing import Any

from bot.github.client import RepoClient
from bot.runs.deploys import deploy_repair, failed
from bot.runs.ours import is_ours
from bot.runs.repairs import repair, shipmate_pull
from bot.triggers.context import Context
from bot.triggers.deploy_log import fetch_log, log_url
from bot.triggers.events import DeploymentItem, DeploymentStatus
from bot.triggers.routing import Router

router = Router()


async def deployed_pull(
    context: Context, repo: RepoClient, deployment: DeploymentItem
) -> dict[str, Any] | None:
    """The Shipmate PR this deployment shipped: the open PR of a shipmate/ ref, or the merged
    Shipmate PR the deployed commit came from (GitHub's commits/{sha}/pulls)."""
    ref, sha = deployment.ref or "", deployment.sha or ""
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
    event = DeploymentStatus.model_validate(context.payload)
    if not failed(event):
        return
    repo = await context.repo()
    pull = await deployed_pull(context, repo, event.deployment)
    if pull is None:
        return
    hosts = (await context.config()).deploy_log_hosts
    status = event.deployment_status
    url = log_url(status.log_url, status.target_url, hosts)
    log = await fetch_log(url, hosts) if url else ""
    failure = deploy_repair(event, int(pull["number"]), str(pull["head"]["sha"]), log)
    await repair(context, repo, pull, failure)
