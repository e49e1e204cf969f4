"""GitHub's REST answer shapes for the stand-in's CI: check suites and runs, Actions workflow
runs and jobs, deployments and their statuses. Pure builders of the JSON GitHub sends, with
every field its description requires."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from standins.github_shapes import node_id, stable_id


def check_suite(
    *,
    suite_id: int,
    repo: dict[str, Any],
    app: dict[str, Any],
    head_sha: str,
    head_branch: str | None,
    status: str,
    conclusion: str | None,
    head_commit: dict[str, Any],
    pulls: Sequence[dict[str, Any]],
    when: str,
) -> dict[str, Any]:
    api = f"{repo['url']}/check-suites/{suite_id}"
    return {
        "id": suite_id,
        "node_id": node_id("CheckSuite", suite_id),
        "head_branch": head_branch,
        "head_sha": head_sha,
        "status": status,
        "conclusion": conclusion,
        "url": api,
        "before": None,
        "after": head_sha,
        "pull_requests": list(pulls),
        "app": app,
        "repository": repo,
        "created_at": when,
        "updated_at": when,
        "head_commit": head_commit,
        "latest_check_runs_count": 0,
        "check_runs_url": f"{api}/check-runs",
        "rerequestable": True,
        "runs_rerequestable": True,
    }


def check_run(
    *,
    run_id: int,
    repo: dict[str, Any],
    app: dict[str, Any],
    suite_id: int,
    fields: Mapping[str, Any],
    pulls: Sequence[dict[str, Any]],
    when: str,
) -> dict[str, Any]:
    """A check run from the fields a client sends (name, head_sha, status, conclusion, output,
    details_url, external_id, started_at, completed_at)."""
    url = f"{repo['url']}/check-runs/{run_id}"
    conclusion = fields.get("conclusion")
    status = "completed" if conclusion else fields.get("status", "queued")
    shape: dict[str, Any] = {
        "id": run_id,
        "node_id": node_id("CheckRun", run_id),
        "name": fields.get("name", ""),
        "head_sha": fields.get("head_sha", ""),
        "external_id": fields.get("external_id", ""),
        "url": url,
        "html_url": f"{repo['html_url']}/runs/{run_id}",
        "details_url": fields.get("details_url"),
        "status": status,
        "conclusion": conclusion,
        "started_at": fields.get("started_at", when),
        "completed_at": fields.get("completed_at", when if status == "completed" else None),
        "check_suite": {"id": suite_id},
        "app": app,
        "pull_requests": list(pulls),
    }
    shape["output"] = check_output(url, fields.get("output"))
    return shape


def check_output(url: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    given = given or {}
    return {
        "title": given.get("title"),
        "summary": given.get("summary"),
        "text": given.get("text"),
        "annotations_count": len(given.get("annotations") or []),
        "annotations_url": f"{url}/annotations",
    }


RUN_URLS = ("jobs", "logs", "artifacts", "cancel", "rerun")


def workflow_run(
    *,
    run_id: int,
    repo: dict[str, Any],
    actor: dict[str, Any],
    name: str,
    head_sha: str,
    head_branch: str,
    conclusion: str | None,
    suite_id: int,
    head_commit: dict[str, Any],
    pulls: Sequence[dict[str, Any]],
    when: str,
) -> dict[str, Any]:
    api = f"{repo['url']}/actions/runs/{run_id}"
    workflow_id = stable_id(name)
    return {
        "id": run_id,
        "name": name,
        "node_id": node_id("WorkflowRun", run_id),
        "check_suite_id": suite_id,
        "check_suite_node_id": node_id("CheckSuite", suite_id),
        "head_branch": head_branch,
        "head_sha": head_sha,
        "path": f".github/workflows/{name.lower().replace(' ', '-')}.yml",
        "display_title": head_commit["message"].splitlines()[0] if head_commit["message"] else name,
        "run_number": 1,
        "run_attempt": 1,
        "event": "push",
        "status": "completed" if conclusion else "in_progress",
        "conclusion": conclusion,
        "workflow_id": workflow_id,
        "url": api,
        "html_url": f"{repo['html_url']}/actions/runs/{run_id}",
        "pull_requests": list(pulls),
        "created_at": when,
        "updated_at": when,
        "run_started_at": when,
        "actor": actor,
        "triggering_actor": actor,
        **{f"{kind}_url": f"{api}/{kind}" for kind in RUN_URLS},
        "check_suite_url": f"{repo['url']}/check-suites/{suite_id}",
        "previous_attempt_url": None,
        "workflow_url": f"{repo['url']}/actions/workflows/{workflow_id}",
        "head_commit": head_commit,
        "repository": repo,
        "head_repository": repo,
    }


def job(
    *,
    job_id: int,
    repo: dict[str, Any],
    run_id: int,
    workflow_name: str,
    name: str,
    head_sha: str,
    head_branch: str | None,
    conclusion: str | None,
    steps: Sequence[Mapping[str, Any]],
    when: str,
) -> dict[str, Any]:
    status = "completed" if conclusion else "in_progress"
    return {
        "id": job_id,
        "run_id": run_id,
        "run_url": f"{repo['url']}/actions/runs/{run_id}",
        "run_attempt": 1,
        "node_id": node_id("Job", job_id),
        "head_sha": head_sha,
        "head_branch": head_branch,
        "url": f"{repo['url']}/actions/jobs/{job_id}",
        "html_url": f"{repo['html_url']}/actions/runs/{run_id}/job/{job_id}",
        "status": status,
        "conclusion": conclusion,
        "created_at": when,
        "started_at": when,
        "completed_at": when if conclusion else None,
        "name": name,
        "steps": [
            {
                "name": step["name"],
                "status": "completed" if step.get("conclusion") else "in_progress",
                "conclusion": step.get("conclusion"),
                "number": number,
                "started_at": when,
                "completed_at": when,
            }
            for number, step in enumerate(steps, 1)
        ],
        "check_run_url": f"{repo['url']}/check-runs/{job_id}",
        "labels": ["ubuntu-latest"],
        "runner_id": 1,
        "runner_name": "GitHub Actions 1",
        "runner_group_id": 1,
        "runner_group_name": "GitHub Actions",
        "workflow_name": workflow_name,
    }


def deployment(
    *,
    deployment_id: int,
    repo: dict[str, Any],
    creator: dict[str, Any],
    ref: str,
    sha: str,
    environment: str,
    task: str,
    description: str | None,
    payload: Any,
    when: str,
) -> dict[str, Any]:
    url = f"{repo['url']}/deployments/{deployment_id}"
    return {
        "url": url,
        "id": deployment_id,
        "node_id": node_id("Deployment", deployment_id),
        "sha": sha,
        "ref": ref,
        "task": task,
        "payload": payload if payload is not None else {},
        "original_environment": environment,
        "environment": environment,
        "description": description,
        "creator": creator,
        "created_at": when,
        "updated_at": when,
        "statuses_url": f"{url}/statuses",
        "repository_url": repo["url"],
        "transient_environment": False,
        "production_environment": environment == "production",
    }


def deployment_status(
    *,
    status_id: int,
    deployment: Mapping[str, Any],
    creator: dict[str, Any],
    state: str,
    description: str,
    log_url: str,
    target_url: str,
    environment_url: str,
    when: str,
) -> dict[str, Any]:
    return {
        "url": f"{deployment['url']}/statuses/{status_id}",
        "id": status_id,
        "node_id": node_id("DeploymentStatus", status_id),
        "state": state,
        "creator": creator,
        "description": description,
        "environment": deployment["environment"],
        "target_url": target_url or log_url,
        "log_url": log_url or target_url,
        "environment_url": environment_url,
        "created_at": when,
        "updated_at": when,
        "deployment_url": deployment["url"],
        "repository_url": deployment["repository_url"],
    }


def status(
    *, url: str, status_id: int, body: Mapping[str, Any], creator: dict[str, Any], when: str
) -> dict[str, Any]:
    """A commit status from the fields a client sends (state, context, description, target_url)."""
    return {
        "url": url,
        "avatar_url": None,
        "id": status_id,
        "node_id": node_id("StatusContext", status_id),
        "state": body["state"],
        "description": body.get("description"),
        "target_url": body.get("target_url"),
        "context": body.get("context") or "default",
        "created_at": when,
        "updated_at": when,
        "creator": creator,
    }
