"""A failed deploy health check as a repair: what the follow-up run is asked to do, from the
`deployment_status` event alone. Pure; handlers/deployments.py and `shipmate eval --deploy`
decide it the same way."""

from __future__ import annotations

from bot.runs.repairs import Failure
from bot.runs.request import Task
from bot.triggers.events import DeploymentStatus

FAILED_STATES = ("failure", "error")


def failed(event: DeploymentStatus) -> bool:
    return event.deployment_status.state in FAILED_STATES


def deploy_repair(event: DeploymentStatus, number: int, head_sha: str, log: str) -> Failure:
    """The failed deploy, with its `log`, as the follow-up to PR `number` whose change was
    deployed: it starts from the deployed commit (or, when the event names none, the PR's head
    `head_sha`)."""
    status, deployment = event.deployment_status, event.deployment
    environment = deployment.environment or "deploy"
    return Failure(
        check=f"deploy to {environment}",
        log=log,
        label=f"deploy log ({environment})",
        note=status.description or "The deploy failed without a description.",
        follow_up=Task(
            base_sha=deployment.sha or head_sha,
            title=f"Fix the failed {environment} deploy of #{number}",
            instruction=f"The deploy health check for `{environment}` failed after #{number} "
            "was deployed. Make the smallest change that fixes it.",
        ),
    )
