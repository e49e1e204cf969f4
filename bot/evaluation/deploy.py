"""The deploy test: a recorded failed deploy replayed into the deploy repair path, and the
follow-up change graded by its tests.

What handlers/deployments.py does with a `deployment_status` failure, done here with the same
functions: the log fetched by `fetch_log` from the status's log URL (the recorded log served
there in-process, the URL's host the one listed), the follow-up decided by `deploy_repair`,
the log cut and the task made by `repair_plan`, the brief by `task_text` and `context_blocks`
as the GitHub run makes it. The run is `run_local` from the deployed commit (checkout cache,
sandbox, agent, review, commit), as the repository test runs; where GitHub would open the
follow-up pull request, the commit it would carry is graded."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.agent.model import Model
from bot.agent.prompts import Brief
from bot.evaluation.deploy_tasks import DeployTask
from bot.evaluation.harness import EvalSettings, TaskResult, run_graded
from bot.runs.briefs import context_blocks, task_text
from bot.runs.deploys import deploy_repair
from bot.runs.repairs import RepairPlan, repair_plan
from bot.triggers.deploy_log import fetch_log, log_url


async def replayed_log(task: DeployTask) -> str:
    """The deploy log as the handler would fetch it from the deploy service."""
    status = task.event.deployment_status
    recorded = status.log_url or status.target_url or ""
    hosts = [urlsplit(recorded).hostname or ""]
    url = log_url(status.log_url, status.target_url, hosts)
    if not url:
        return ""

    def serve(request: httpx.Request) -> httpx.Response:
        if str(request.url) != url:
            return httpx.Response(404)
        return httpx.Response(200, text=task.deploy_log)

    return await fetch_log(url, hosts, transport=httpx.MockTransport(serve))


def deployed_pull(task: DeployTask) -> dict[str, Any]:
    """The deployed Shipmate PR as the handler finds it: merged, its head what was deployed."""
    number = task.number
    head = {"ref": f"shipmate/{number}-deployed", "sha": task.grading.base_commit}
    return {"title": "", "body": "", **task.pull, "number": number, "head": head}


async def deploy_plan(task: DeployTask) -> RepairPlan:
    """The follow-up run the handler would queue for this failed deploy."""
    log = await replayed_log(task)
    failure = deploy_repair(task.event, task.number, task.grading.base_commit, log)
    return repair_plan(deployed_pull(task), failure)


async def deploy_brief(task: DeployTask) -> Brief:
    """The brief the GitHub run would give the agent for that follow-up."""
    plan, pull = await deploy_plan(task), deployed_pull(task)
    return Brief(
        task=task_text(plan.task, task.number, pull), context=context_blocks(plan.task, pull)
    )


async def run_deploy_task(task: DeployTask, model: Model, settings: EvalSettings) -> TaskResult:
    return await run_graded(task.grading, await deploy_brief(task), model, settings)
