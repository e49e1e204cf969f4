"""A `run` job's attempts, and what makes a retried one converge on one result.

A worker SIGKILLed mid-run (or whose lease ran out) leaves its job to run again. What the run
made on GitHub is found again by the job's own key, not by the attempt: the key comes from the
`RunRequest` (its delivery, repository, number, verb and the held change it publishes), so each
attempt of one job has it and no other job does. With it the retry finds the sticky comment
(its hidden run marker, in Shipmate's own comment only), the check runs (their `external_id`,
on Shipmate's App's own only), the branch (named by the key; its head counts as ours only when
an earlier attempt recorded making that commit) and the pull request (open, from that branch,
by Shipmate's bot).

Each attempt keeps its own run record (`key`, then `key.2`, `key.3`, ...): a killed attempt's
record is closed as `interrupted` by the next, with what its model calls cost, so the money it
spent stays in the ledger once (its model calls stay its own) and is never added to the
retry's. Resuming the killed record instead would mix two attempts' model calls, transcripts
and egress under one id and need its totals summed by hand. An attempt that finished its record
before the kill ends the job at once: the run is done, and is not done twice.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.runs.request import RunRequest

INTERRUPTED = "interrupted"


def job_key(request: RunRequest, job_id: int) -> str:
    """The job's key (12 hex digits): the same for each attempt of one job."""
    source = request.delivery_id or f"job {job_id}"
    parts = (source, request.repo, str(request.number), request.verb, request.task.publish or "")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def job_of(run_id: str) -> str:
    """The job key of a run record's id: `key` of `key`, `key.2`, `key.3`, ..."""
    key, dot, attempt = run_id.rpartition(".")
    return key if dot and attempt.isdigit() else run_id


def run_marker(key: str) -> str:
    """The hidden line in the sticky comment of the job `key`."""
    return f"<!-- shipmate:run {key} -->"


@dataclass(frozen=True)
class Attempts:
    """What the earlier attempts of a job recorded: the new attempt's run id, the earlier
    attempts' ids, those of them it closes as interrupted, and the one that already finished
    the run, if one did."""

    run_id: str
    earlier: tuple[str, ...] = ()
    interrupted: tuple[str, ...] = ()
    finished: str | None = None
    # Whether an earlier attempt may have acted on GitHub (so what it made is looked for).
    retried: bool = False
    # The commit the earlier attempts started from: the retry starts there too, so that a
    # commit it builds on one they pushed holds its change alone, whatever the default branch
    # did meanwhile.
    base_sha: str | None = None


def next_attempt(key: str, rows: Sequence[Mapping[str, Any]], *, attempt: int) -> Attempts:
    """The job's attempt number `attempt` after its recorded `rows` (oldest first)."""
    ended = (r for r in rows if r.get("finished_at") is not None and r["status"] != INTERRUPTED)
    finished = next((str(r["id"]) for r in ended), None)
    unfinished = tuple(str(r["id"]) for r in rows if r.get("finished_at") is None)
    run_id = key if not rows else f"{key}.{len(rows) + 1}"
    earlier = tuple(str(r["id"]) for r in rows)
    base = next((str(r["base_sha"]) for r in rows if r.get("base_sha")), None)
    retried = attempt > 1 or bool(rows)
    return Attempts(run_id, earlier, unfinished, finished, retried=retried, base_sha=base)


def interrupted_totals(calls: Iterable[Mapping[str, Any]], now: float) -> dict[str, Any]:
    """A killed attempt's record, closed: what its model calls recorded, and when it ended."""
    calls = list(calls)
    tokens = (
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    )
    totals: dict[str, Any] = {name: sum(int(c[name]) for c in calls) for name in tokens}
    return {
        **totals,
        "status": INTERRUPTED,
        "reason": "The worker stopped during the run (killed, or its lease ran out); "
        "the job ran again.",
        "steps": len(calls),
        "cost_usd": sum(float(c["cost_usd"]) for c in calls),
        "finished_at": now,
    }


def begin_attempt(store: Any, key: str, attempt: int) -> Attempts:
    """Attempt number `attempt` of job `key`, the earlier ones that never finished closed as
    interrupted (blocking: call from a thread)."""
    attempts = next_attempt(key, store.attempts_of(key), attempt=attempt)
    for run_id in attempts.interrupted:
        store.update_run(run_id, **interrupted_totals(store.model_calls(run_id), time.time()))
    return attempts


def claim_branch(store: Any, run_ids: Iterable[str], branch: str) -> None:
    """The interrupted attempts belong to the change on `branch`, so its ledger counts them."""
    for run_id in run_ids:
        store.update_run(run_id, branch=branch)


def commits_made(store: Any, run_ids: Iterable[str]) -> dict[str, str]:
    """sha -> tree of each commit these runs recorded making (`git.commit`, written before the
    branch moves to it)."""
    made: dict[str, str] = {}
    for run_id in run_ids:
        for row in store.audit_for_run(run_id):
            detail = row.get("detail") or {}
            if row["action"] == "git.commit" and "sha" in detail and "tree" in detail:
                made[str(detail["sha"])] = str(detail["tree"])
    return made
