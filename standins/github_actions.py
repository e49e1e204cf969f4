"""The GitHub stand-in's Actions routes: workflow runs (of the repository or of one workflow),
their jobs by attempt, a job and its log, and re-running a run's failed jobs (a new attempt)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.responses import RedirectResponse, Response

from standins.github_common import Call, NotFound, now_iso, owned, public

if TYPE_CHECKING:
    from standins.github import GitHubStandIn

FAILED = ("failure", "timed_out", "cancelled")


def list_runs(gh: GitHubStandIn, call: Call) -> Response:
    runs = [r for r in gh.state.workflow_runs.values() if r["_repo"] == call.repo]
    return _listed(gh, call, runs)


def workflow_runs(gh: GitHubStandIn, call: Call) -> Response:
    workflow = call.params["workflow_id"]
    runs = [
        r
        for r in gh.state.workflow_runs.values()
        if r["_repo"] == call.repo and str(r["workflow_id"]) == workflow
    ]
    return _listed(gh, call, runs)


def _listed(gh: GitHubStandIn, call: Call, runs: list[dict[str, Any]]) -> Response:
    query = call.query
    for name, field_name in (("branch", "head_branch"), ("head_sha", "head_sha")):
        if query.get(name):
            runs = [r for r in runs if r[field_name] == query[name]]
    status = query.get("status")
    if status in ("completed", "queued", "in_progress"):
        runs = [r for r in runs if r["status"] == status]
    elif status:
        runs = [r for r in runs if r["conclusion"] == status]
    return gh._paginate(call.request, [public(r) for r in reversed(runs)], key="workflow_runs")


def get_run(gh: GitHubStandIn, call: Call) -> Response:
    return gh._json(public(owned(gh.state.workflow_runs, call.params["run_id"], call.repo)))


def run_jobs(gh: GitHubStandIn, call: Call) -> Response:
    run = owned(gh.state.workflow_runs, call.params["run_id"], call.repo)
    jobs = [public(j) for j in jobs_of(gh, run["id"], run["run_attempt"])]
    return gh._paginate(call.request, jobs, key="jobs")


def attempt_jobs(gh: GitHubStandIn, call: Call) -> Response:
    run = owned(gh.state.workflow_runs, call.params["run_id"], call.repo)
    attempt = call.number("attempt_number")
    if not 1 <= attempt <= run["run_attempt"]:
        raise NotFound
    jobs = [public(j) for j in jobs_of(gh, run["id"], attempt)]
    return gh._paginate(call.request, jobs, key="jobs")


def get_job(gh: GitHubStandIn, call: Call) -> Response:
    return gh._json(public(owned(gh.state.jobs, call.params["job_id"], call.repo)))


def job_logs(gh: GitHubStandIn, call: Call) -> Response:
    """A redirect to the log, valid for a minute, as GitHub's is."""
    job = owned(gh.state.jobs, call.params["job_id"], call.repo)
    key = secrets.token_urlsafe(12)
    gh._log_urls[key] = (job["_log"], time.time() + 60)
    return RedirectResponse(f"{gh.url}/_logs/{key}", 302, headers=gh._headers())


def rerun_failed_jobs(gh: GitHubStandIn, call: Call) -> Response:
    run = owned(gh.state.workflow_runs, call.params["run_id"], call.repo)
    if run["status"] != "completed":
        return gh._error(403, "This workflow is already running")
    if not any(j["conclusion"] in FAILED for j in jobs_of(gh, run["id"], run["run_attempt"])):
        return gh._error(403, "This workflow run has no failed jobs to re-run")
    rerun(gh, run)
    # As GitHub: the run's actor stays; who started this attempt is its triggering actor.
    run["triggering_actor"] = gh._user(gh._bot(call.token))
    return gh._json({}, 201)


def jobs_of(gh: GitHubStandIn, run_id: int, attempt: int) -> list[dict[str, Any]]:
    return [
        j
        for j in gh.state.jobs.values()
        if j["run_id"] == run_id and int(j.get("run_attempt") or 1) == attempt
    ]


def rerun(gh: GitHubStandIn, run: dict[str, Any]) -> None:
    """A new attempt: failed jobs queued again under new ids, the others carried over."""
    previous = jobs_of(gh, run["id"], run["run_attempt"])
    run.update(run_attempt=run["run_attempt"] + 1, status="queued", conclusion=None)
    run["updated_at"] = now_iso()
    for job in previous:
        again = {**job, "id": gh.next_id(), "run_attempt": run["run_attempt"]}
        if job["conclusion"] in FAILED:
            again.update(status="queued", conclusion=None, completed_at=None, _log="")
        gh.state.jobs[again["id"]] = again
    gh.state.reruns.append(run["id"])


def finish_attempt(
    gh: GitHubStandIn, run_id: int, jobs: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The re-run attempt ends: each named job gets its conclusion and log; the run's conclusion
    is the worst of its jobs'."""
    run = gh.state.workflow_runs[run_id]
    current = {j["name"]: j for j in jobs_of(gh, run_id, run["run_attempt"])}
    for spec in jobs:
        job = current[str(spec["name"])]
        job.update(status="completed", conclusion=spec["conclusion"], _log=spec.get("log", ""))
        job["completed_at"] = now_iso()
    conclusions = [j["conclusion"] for j in current.values()]
    worst = next((c for c in FAILED if c in conclusions), "success")
    run.update(status="completed", conclusion=worst, updated_at=now_iso())
    return public(run)
