"""The `run` job's request: built in one place, stored as a flat payload (the shape earlier
versions queued and recorded), read back validated; a bad payload is one clear failed job."""

from __future__ import annotations

from typing import Any

import pytest

from bot.db.store import Store
from bot.jobs.queue import Job
from bot.jobs.worker import JobContext, Worker
from bot.runs.job import run_job
from bot.runs.request import BadRunRequest, PullTarget, RunRequest, Task, run_verb
from tests.dbs import migrate_all

# A payload as the version before RunRequest queued it (and as it is still written).
OLD_PAYLOAD: dict[str, Any] = {
    "repo": "acme/widgets",
    "number": 7,
    "verb": "revise",
    "installation_id": 42,
    "delivery_id": "d-1",
    "actor": "alice",
    "sticky_comment_id": None,
    "pr": {"number": 7, "head_ref": "shipmate/7-x", "head_sha": "a" * 40, "reply_to": [11, 12]},
    "task": "Address this review of your pull request with the smallest change.",
    "feedback": "Review by alice: rename it",
    "feedback_label": "review",
}


def test_an_earlier_payload_reads_and_round_trips() -> None:
    request = RunRequest.from_payload(OLD_PAYLOAD)
    assert request.task.pr == PullTarget(7, "shipmate/7-x", "a" * 40, (11, 12))
    assert request.task.instruction == OLD_PAYLOAD["task"] and request.task.fork is False
    assert RunRequest.from_payload(request.to_payload()) == request
    payload = request.to_payload()
    assert {k: v for k, v in payload.items() if k != "pr"} == {
        k: v for k, v in OLD_PAYLOAD.items() if k != "pr"
    }


def test_the_task_keeps_only_what_is_set() -> None:
    assert Task().fields() == {}
    task = Task(instruction="do it", notes="carefully", base_sha="b" * 40)
    assert task.fields() == {"task": "do it", "notes": "carefully", "base_sha": "b" * 40}
    assert Task.from_fields(task.fields()) == task
    moved = Task(pr=PullTarget(1, "shipmate/1", "c" * 40)).starting_at("d" * 40)
    assert moved.pr is not None and moved.pr.head_sha == "d" * 40


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"number": "7"}, "number"),  # no coercion of strings
        ({"number": 0}, "number"),
        ({"installation_id": True}, "installation_id"),
        ({"repo": "../../etc"}, "repo"),
        ({"repo": "acme/.."}, "repo"),
        ({"repo": "acme"}, "repo"),
        ({"verb": "stop"}, "verb"),  # stop is not something a run does
        ({"pr": {"number": 7}}, "pr.head_ref"),
        ({"pr": {**OLD_PAYLOAD["pr"], "head_sha": "; rm -rf /"}}, "pr.head_sha"),
        ({"fork": "yes"}, "fork"),
        ({"task": ["a"]}, "task"),
        ({"base_sha": "main"}, "base_sha"),
        ({"surprise": 1}, "surprise"),
        ({"publish": "abcdef.x"}, "publish"),
        ({"publish": "../held"}, "publish"),
    ],
)
def test_a_bad_payload_names_its_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRunRequest) as info:
        RunRequest.from_payload({**OLD_PAYLOAD, **change})
    assert str(info.value).startswith(f"{field}: ")


def test_a_held_change_of_any_attempt_is_published_by_its_run_id() -> None:
    """A retried attempt's run id is its job's key and `.2`, `.3`, ... (bot/runs/attempts.py)."""
    for run_id in ("abcdef123456", "abcdef123456.2", "abcdef123456.10"):
        assert RunRequest.from_payload({**OLD_PAYLOAD, "publish": run_id}).task.publish == run_id


def test_a_payload_without_its_envelope_or_not_an_object_is_refused() -> None:
    for payload in ({}, {"repo": "a/b"}, ["repo"], "x"):
        with pytest.raises(BadRunRequest):
            RunRequest.from_payload(payload)  # type: ignore[arg-type]


def test_only_run_verbs_make_a_request() -> None:
    assert run_verb("fix") == "fix"
    with pytest.raises(BadRunRequest):
        run_verb("help")


@pytest.mark.anyio
async def test_a_bad_run_job_fails_once_and_clearly(sqlite_url: str) -> None:
    """Dead-lettered at the first attempt with the reason; no retry loop, no GitHub call (the
    deps would fail loudly if anything reached them)."""
    store = Store(sqlite_url, job_max_attempts=5)
    queue = migrate_all(store)
    deps: Any = object()  # not RunDeps: touching it would raise AttributeError, not BadRunRequest

    async def run(job: Job, context: JobContext) -> None:
        await run_job(job, context, deps)

    queue.enqueue("run", {**OLD_PAYLOAD, "number": "7; DROP TABLE"})
    assert await Worker(queue, {"run": run}).run_until_idle() == 1
    assert queue.counts() == {"dead": 1}
    (dead,) = queue.dead_letters()
    error = queue.get(dead.id)["last_error"]  # type: ignore[index]
    assert dead.attempts == 1
    assert error.startswith("JobRejected: not a run request: number: ")
