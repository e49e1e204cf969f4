"""A run job's attempts (bot/runs/attempts.py): one key for each attempt of a job, a record of
its own for each attempt, a killed attempt closed with what its model calls cost."""

from __future__ import annotations

from bot.runs.attempts import INTERRUPTED, interrupted_totals, job_key, job_of, next_attempt
from bot.runs.request import RunRequest, Task


def _request(**changes: object) -> RunRequest:
    fields: dict[str, object] = {
        "repo": "octo/widgets",
        "number": 1,
        "verb": "fix",
        "installation_id": 7,
        "delivery_id": "d-1",
    }
    return RunRequest(**{**fields, **changes})  # type: ignore[arg-type]


def test_each_attempt_of_a_job_has_its_key_and_no_other_job_does() -> None:
    key = job_key(_request(), job_id=3)
    assert key == job_key(_request(), job_id=3) == job_key(_request(), job_id=4)
    assert len(key) == 12 and int(key, 16) >= 0
    others = {
        job_key(_request(delivery_id="d-2"), 3),
        job_key(_request(number=2), 3),
        job_key(_request(verb="plan"), 3),
        job_key(_request(task=Task(publish="abcdef")), 3),
    }
    assert key not in others and len(others) == 4
    # A job without a delivery (queued before deliveries were recorded) is keyed by its id.
    assert job_key(_request(delivery_id=None), 3) != job_key(_request(delivery_id=None), 4)


def test_the_first_attempt_is_the_key_and_each_retry_a_record_of_its_own() -> None:
    first = next_attempt("k", [], attempt=1)
    assert first.run_id == "k" and first.earlier == () and not first.retried
    killed = {"id": "k", "status": "running", "finished_at": None}
    again = next_attempt("k", [killed], attempt=2)
    assert again.run_id == "k.2" and again.interrupted == ("k",) and again.retried
    closed = {**killed, "status": INTERRUPTED, "finished_at": 5.0}
    third = next_attempt(
        "k", [closed, {"id": "k.2", "status": "running", "finished_at": None}], attempt=3
    )
    assert third.run_id == "k.3" and third.earlier == ("k", "k.2") and third.interrupted == ("k.2",)
    assert third.finished is None


def test_a_retry_starts_from_the_commit_the_first_attempt_started_from() -> None:
    assert next_attempt("k", [], attempt=1).base_sha is None
    killed = {"id": "k", "status": INTERRUPTED, "finished_at": 5.0, "base_sha": "a" * 40}
    later = {"id": "k.2", "status": "running", "finished_at": None, "base_sha": "a" * 40}
    assert next_attempt("k", [killed, later], attempt=3).base_sha == "a" * 40


def test_an_attempt_that_finished_the_run_ends_the_job() -> None:
    done = {"id": "k", "status": "completed", "finished_at": 5.0}
    assert next_attempt("k", [done], attempt=2).finished == "k"
    # Nothing recorded, yet not the first attempt (`apply --large` records no run of its own).
    assert next_attempt("k", [], attempt=2).retried


def test_a_killed_attempt_is_closed_with_what_its_model_calls_cost() -> None:
    call = {
        "input_tokens": 10,
        "output_tokens": 2,
        "cache_creation_input_tokens": 1,
        "cache_read_input_tokens": 0,
        "cost_usd": 0.25,
    }
    totals = interrupted_totals([call, {**call, "cost_usd": 0.5}], now=9.0)
    assert totals["status"] == INTERRUPTED and totals["finished_at"] == 9.0
    assert totals["cost_usd"] == 0.75 and totals["steps"] == 2 and totals["input_tokens"] == 20
    assert interrupted_totals([], now=1.0)["cost_usd"] == 0


def test_each_attempts_record_names_its_job() -> None:
    assert [job_of(i) for i in ("abc123", "abc123.2", "abc123.12")] == ["abc123"] * 3
    assert job_of("abc.def") == "abc.def" and job_of("abc.") == "abc."
