"""Deploy-test tasks (`shipmate eval --deploy`), read from a JSON Lines file: a recorded failed
deploy of a repository at a commit, and the tests that show it fixed. Pure: a malformed line is
a `TaskFileError` naming the line and the field.

A line is a SWE-bench-style instance (`instance_id`, `repo`, `base_commit`, `patch`,
`test_patch`, `FAIL_TO_PASS`, `PASS_TO_PASS`, `test_cmd`; see bot/evaluation/tasks.py) with,
instead of a problem statement, what the deploy reported:

- `deployment_status`: the `deployment_status` webhook's payload as GitHub sent it, its state
  `failure` or `error`; `deployment.sha`, when given, is `base_commit` (what was deployed).
- `deploy_log`: the health check's or deploy's log as the deploy service served it at the
  status's `log_url` (else `target_url`); "" when there was none.
- `pull` (optional): the Shipmate pull request whose change was deployed, as GitHub's issue
  API gives it (`number`, `title`, `body`); by default #1 with no body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.evaluation.tasks import EvalTask, TaskFileError, check_unique, parse_task, task_lines
from bot.runs.deploys import failed
from bot.triggers.events import DeploymentStatus


@dataclass(frozen=True)
class DeployTask:
    event: DeploymentStatus
    deploy_log: str
    grading: EvalTask  # repo, base_commit, patch and tests; its problem statement is unused
    pull: dict[str, Any] = field(default_factory=dict)

    @property
    def instance_id(self) -> str:
        return self.grading.instance_id

    @property
    def patch(self) -> str:
        return self.grading.patch

    @property
    def number(self) -> int:
        return int(self.pull.get("number", 1))


def _event(data: dict[str, Any], where: str) -> DeploymentStatus:
    payload = data.get("deployment_status")
    if not isinstance(payload, dict):
        raise TaskFileError(f"{where}: deployment_status must be the webhook's payload (object)")
    try:
        event = DeploymentStatus.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        spot = ".".join(str(part) for part in first["loc"])
        raise TaskFileError(f"{where}: deployment_status: {spot}: {first['msg']}") from None
    if not failed(event):
        state = event.deployment_status.state
        raise TaskFileError(f"{where}: deployment_status state {state!r} is not a failed deploy")
    sha = event.deployment.sha
    if sha and sha != data.get("base_commit"):
        raise TaskFileError(f"{where}: deployment.sha {sha} is not base_commit (what was deployed)")
    return event


def _pull(value: Any, where: str) -> dict[str, Any]:
    pull = {"number": 1} if value is None else value
    if not isinstance(pull, dict):
        raise TaskFileError(f"{where}: pull must be an object (number, title, body)")
    number = pull.get("number", 1)
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise TaskFileError(f"{where}: pull.number must be a positive whole number")
    return {**pull, "number": number}


def parse_deploy_task(data: Any, where: str, base: Path) -> DeployTask:
    if not isinstance(data, dict):
        raise TaskFileError(f"{where}: a task is a JSON object")
    event = _event(data, where)
    log = data.get("deploy_log", "")
    if not isinstance(log, str):
        raise TaskFileError(f"{where}: deploy_log must be text")
    status = event.deployment_status
    if log and not (status.log_url or status.target_url):
        raise TaskFileError(f"{where}: a deploy_log needs the status's log_url or target_url")
    described = status.description or "The deploy failed without a description."
    grading = parse_task({**data, "problem_statement": described}, where, base)
    return DeployTask(event, log, grading, _pull(data.get("pull"), where))


def load_deploy_tasks(path: Path) -> list[DeployTask]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise TaskFileError(f"{path}: {exc.strerror}") from None
    found = [
        (where, parse_deploy_task(data, where, path.parent))
        for where, data in task_lines(text, str(path))
    ]
    check_unique([(where, task.instance_id) for where, task in found])
    return [task for _, task in found]
