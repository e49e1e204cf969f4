"""A failed deploy health check (`deployment_status` failure or error) of a Shipmate change
becomes a repair run that opens a follow-up pull request from what was deployed; it never pushes
to the default branch. The deploy log is fetched only from hosts the repository lists."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from bot.ci import excerpt
from bot.context import Context
from bot.repairs import shipmate_pull
from bot.routing import Router
from bot.tasks import enqueue_run

router = Router()
LOG_BYTES = 2_000_000


async def fetch_log(url: str | None, hosts: list[str]) -> str:
    """The log at `url` if its host is listed in the repo config (no redirects elsewhere)."""
    if not url or (urlsplit(url).hostname or "") not in hosts:
        return ""
    try:
        async with httpx.AsyncClient(timeout=15, follow_redirects=False) as client:
            response = await client.get(url)
    except httpx.HTTPError:
        return ""
    return response.text[:LOG_BYTES] if response.status_code == 200 else ""


@router.register("deployment_status", action="created")
async def deployment_failed(context: Context) -> None:
    status = context.payload.get("deployment_status") or {}
    deployment = context.payload.get("deployment") or {}
    if status.get("state") not in ("failure", "error"):
        return
    ref = str(deployment.get("ref") or "")
    if not ref.startswith("shipmate/"):
        return
    repo = await context.repo()
    pulls = await repo.open_pulls_for_branch(ref)
    pull = next(
        (p for p in [await shipmate_pull(context, repo, c.number) for c in pulls] if p is not None),
        None,
    )
    if pull is None:
        return
    config = await context.config()
    log = await fetch_log(
        status.get("log_url") or status.get("target_url"), config.deploy_log_hosts
    )
    environment = str(deployment.get("environment") or "deploy")
    feedback = f"{status.get('description') or ''}\n{excerpt(log).text if log else ''}".strip()
    await enqueue_run(
        context,
        repo,
        int(pull["number"]),
        "fix",
        {
            "base_sha": str(deployment.get("sha") or pull["head"]["sha"]),
            "task": f"The deploy health check for `{environment}` failed after this change "
            f"(#{pull['number']}). Make the smallest change that fixes it.",
            "feedback": feedback or "The deploy failed without a description.",
            "feedback_label": f"deploy log ({environment})",
        },
    )
