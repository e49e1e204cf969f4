"""`shipmate eval --deploy`, the deploy test, on the example set (QuixBugs deployed): a recorded
failed deploy goes into the deploy repair path as the handler takes it; the gold oracle
resolves every task, the empty oracle none; a recorded run replays offline to the same
results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.evaluation.deploy import deploy_brief, deploy_plan
from bot.evaluation.deploy_tasks import DeployTask, load_deploy_tasks, parse_deploy_task
from bot.evaluation.tasks import TaskFileError, load_tasks
from bot.triggers import deploy_log
from handlers import deployments
from tests.fakes import FakeRepo, context_for, queued_runs, store_at
from tests.test_eval import eval_live, eval_replayed, needs_sandbox, shipmate_eval

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "eval"
DEPLOY = EXAMPLES / "deploy" / "tasks.jsonl"


def example_lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DEPLOY.read_text().splitlines()]


def subset(tmp_path: Path, *names: str) -> Path:
    """The example tasks named, in a file whose `repo` still finds the QuixBugs bundle."""
    (tmp_path / "quixbugs").mkdir()
    shutil.copy(EXAMPLES / "quixbugs" / "quixbugs.bundle", tmp_path / "quixbugs")
    (tmp_path / "deploy").mkdir()
    path = tmp_path / "deploy" / "tasks.jsonl"
    lines = [line for line in example_lines() if line["instance_id"] in names]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_the_example_set_is_quixbugs_deployed_with_recorded_failures() -> None:
    tasks = load_deploy_tasks(DEPLOY)
    quixbugs = {t.instance_id: t for t in load_tasks(EXAMPLES / "quixbugs" / "tasks.jsonl")}
    assert [t.instance_id for t in tasks] == [
        "deploy__gcd",
        "deploy__flatten",
        "deploy__to_base",
        "deploy__sieve",
    ]
    for task in tasks:
        source = quixbugs[task.instance_id.replace("deploy__", "quixbugs__")]
        assert task.grading.repo == source.repo and task.grading.patch == source.patch
        assert task.grading.fail_to_pass == source.fail_to_pass
        status = task.event.deployment_status
        assert status.state == "failure" and status.log_url and status.description
        assert task.event.deployment.sha == task.grading.base_commit
        assert "health check failed" in task.deploy_log and "[smoke]" in task.deploy_log
    assert "RecursionError: maximum recursion depth exceeded" in tasks[0].deploy_log
    assert "Object of type generator is not JSON serializable" in tasks[1].deploy_log
    assert 'FAIL: expected "1F", got "F1"' in tasks[2].deploy_log


def test_a_bad_deploy_task_names_the_line_and_field(tmp_path: Path) -> None:
    good = example_lines()[0]

    def parse(line: dict[str, Any]) -> DeployTask:
        return parse_deploy_task(line, "t:1", tmp_path)

    succeeded = json.loads(json.dumps(good))
    succeeded["deployment_status"]["deployment_status"]["state"] = "success"
    with pytest.raises(TaskFileError, match="t:1: deployment_status state 'success'"):
        parse(succeeded)
    elsewhere = json.loads(json.dumps(good))
    elsewhere["deployment_status"]["deployment"]["sha"] = "ab" * 20
    with pytest.raises(TaskFileError, match="is not base_commit"):
        parse(elsewhere)
    with pytest.raises(TaskFileError, match="deployment_status must be the webhook's payload"):
        parse({**good, "deployment_status": "failure"})
    unserved = json.loads(json.dumps(good))
    unserved["deployment_status"]["deployment_status"].update(log_url=None, target_url=None)
    with pytest.raises(TaskFileError, match="needs the status's log_url"):
        parse(unserved)
    with pytest.raises(TaskFileError, match=r"pull\.number"):
        parse({**good, "pull": {"number": "7"}})
    with pytest.raises(TaskFileError, match="FAIL_TO_PASS is empty"):
        parse({**good, "FAIL_TO_PASS": []})


@pytest.mark.anyio
async def test_the_eval_asks_for_the_run_the_deploy_handler_queues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same failed deploy, once through handlers/deployments.py (a fake GitHub, the log
    fetched from the listed deploy host) and once through the eval: the same follow-up."""
    task = load_deploy_tasks(DEPLOY)[0]
    served: list[str] = []

    async def fetch(url: str, hosts: list[str]) -> str:
        served.append(url)
        answer = httpx.MockTransport(lambda request: httpx.Response(200, text=task.deploy_log))
        return await deploy_log.fetch_log(url, hosts, transport=answer)

    monkeypatch.setattr(deployments, "fetch_log", fetch)
    merged = {
        "number": 1,
        "state": "closed",
        "merged_at": "2026-03-03T09:30:00Z",
        "user": {"login": "shipmate[bot]"},
        "head": {"ref": "shipmate/1-x", "sha": "12" * 20},
    }
    repo = FakeRepo(
        full_name="octo/quixbugs",
        pulls_for_commit=[merged],
        file_text="deploy_log_hosts: [deploy.quixbugs.example]\n",
    )
    store = store_at(tmp_path)
    payload = example_lines()[0]["deployment_status"]
    await deployments.router.dispatch(context_for(store, "deployment_status", payload, repo))
    (queued,) = queued_runs(store)
    plan = await deploy_plan(task)
    assert served == [task.event.deployment_status.log_url]
    assert (queued["verb"], queued["base_sha"]) == (plan.verb, plan.base_sha)
    for name in ("task", "title", "feedback", "feedback_label"):
        assert queued[name] == plan.task.fields()[name], name
    assert "RecursionError" in plan.task.fields()["feedback"]
    brief = await deploy_brief(task)
    assert "deploy health check for `production` failed after #1" in brief.task
    assert brief.context[-1] == ("deploy log (production)", plan.task.feedback)


@needs_sandbox
def test_deploy_eval_with_the_gold_oracle_resolves_every_task(tmp_path: Path) -> None:
    totals, table = shipmate_eval(
        tmp_path, "--deploy", "--tasks", str(DEPLOY), "--oracle", "gold", "--workers", "2"
    )
    assert (totals["tasks"], totals["resolved"], totals["resolved_rate"]) == (4, 4, 1.0)
    assert table.count(" yes ") == 4


@needs_sandbox
def test_deploy_eval_with_the_empty_oracle_resolves_none(tmp_path: Path) -> None:
    totals, table = shipmate_eval(
        tmp_path, "--deploy", "--tasks", str(DEPLOY), "--oracle", "empty", "--workers", "2"
    )
    assert (totals["tasks"], totals["resolved"], totals["resolved_rate"]) == (4, 0, 0.0)
    assert table.count(" no ") == 4


@needs_sandbox
def test_a_recorded_deploy_eval_replays_offline_to_the_same_results(tmp_path: Path) -> None:
    tasks = subset(tmp_path, "deploy__gcd")
    record = tmp_path / "answers"
    live, requests = eval_live(tmp_path, tasks, record, "--deploy")
    first, asked = json.dumps(requests[0]["messages"]), len(requests)
    # The model was told about the deploy, from its log: no problem statement exists here.
    assert "deploy health check for `production` failed" in first
    assert "RecursionError: maximum recursion depth exceeded" in first
    assert live["resolved"] == 1 and live["cost_usd"] > 0
    assert len((record / "deploy__gcd.jsonl").read_text().splitlines()) == asked == 3
    replayed = eval_replayed(tmp_path, tasks, record, "--deploy")
    assert {k: replayed[k] for k in ("tasks", "resolved", "cost_usd")} == {
        k: live[k] for k in ("tasks", "resolved", "cost_usd")
    }
    rows = json.loads((tmp_path / "again" / "results.json").read_text())["tasks"]
    assert rows[0]["steps"] == 1 and rows[0]["resolved"]
