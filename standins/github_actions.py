"""The GitHub stand-in's Actions routes beyond reading one run: a workflow's runs by branch or
commit, the jobs of one attempt, and re-running a run's failed jobs (a new attempt), each with
GitHub's permission checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from standins.github_common import NotFound, Token, now_iso, owned, path_id, public

if TYPE_CHECKING:
    from standins.github import GitHubStandIn


def route(
    gh: GitHubStandIn, request: Request, repo: str, rest: list[str], token: Token | None
) -> Response:
    write = request.method == "POST"
    denied = gh._allowed(token, repo, "actions", "write" if write else "read")
    if denied:
        return denied
    if rest[:1] == ["workflows"] and rest[2:] == ["runs"] and request.method == "GET":
        return _workflow_runs(gh, request, repo, rest[1])
    if rest[:1] == ["runs"] and len(rest) == 5 and rest[2] == "attempts" and rest[4] == "jobs":
        run = owned(gh.state.workflow_runs, rest[1], repo)
        attempt = path_id(rest[3])
        if request.method != "GET" or not 1 <= attempt <= run["run_attempt"]:
            raise NotFound
        jobs = [public(j) for j in jobs_of(gh, run["id"], attempt)]
        return gh._paginate(request, jobs, key="jobs")
    if rest[:1] == ["runs"] and rest[2:] == ["rerun-failed-jobs"] and write:
        run = owned(gh.state.workflow_runs, rest[1], repo)
        if run["status"] != "completed":
            return gh._error(403, "This workflow is already running")
        if not any(j["conclusion"] in FAILED for j in jobs_of(gh, run["id"], run["run_attempt"])):
            return gh._error(403, "This workflow run has no failed jobs to re-run")
        rerun(gh, run)
        return gh._json({}, 201)
    raise NotFound


FAILED = ("failure", "timed_out", "cancelled")


def jobs_of(gh: GitHubStandIn, run_id: int, attempt: int) -> list[dict[str, Any]]:
    return [
        j
        for j in gh.state.jobs.values()
        if j["run_id"] == run_id and int(j.get("run_attempt") or 1) == attempt
    ]


def _workflow_runs(gh: GitHubStandIn, request: Request, repo: str, workflow: str) -> Response:
    runs = [
        r
        for r in gh.state.workflow_runs.values()
        if r["_repo"] == repo and str(r["workflow_id"]) == workflow
    ]
    query = request.query_params
    for name, field_name in (("branch", "head_branch"), ("head_sha", "head_sha")):
        if query.get(name):
            runs = [r for r in runs if r[field_name] == query[name]]
    status = query.get("status")
    if status in ("completed", "queued", "in_progress"):
        runs = [r for r in runs if r["status"] == status]
    elif status:
        runs = [r for r in runs if r["conclusion"] == status]
    return gh._paginate(request, [public(r) for r in reversed(runs)], key="workflow_runs")


def rerun(gh: GitHubStandIn, run: dict[str, Any]) -> None:
    """A new attempt: failed jobs queued again under new ids, the others carried over."""
    previous = jobs_of(gh, run["id"], run["run_attempt"])
    run.update(run_attempt=run["run_attempt"] + 1, status="queued", conclusion=None)
    run["updated_at"] = now_iso()
    for job in previous:
        again = {**job, "id": gh.next_id(), "run_attempt": run["run_attempt"]}
        if job["conclusion"] in FAILED:
            again.update(status="queued", conclusion=None, _log="")
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
    worst = next((c for c in ("failure", "timed_out", "cancelled") if c in conclusions), "success")
    run.update(status="completed", conclusion=worst, updated_at=now_iso())
    return public(run)
