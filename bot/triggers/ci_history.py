"""What the Actions API says about a failed job's past: the log of the same job when it last
passed (an earlier attempt of this run, a run of the same workflow on the same commit, or the
base branch's last green run), and whether it passed on this very commit.

The excerpt takes the passing log to prefer lines only the failing one has; the verdict takes
"passed on the same commit" as the surest sign of a flaky failure.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from bot.github.client import Job, RepoClient, WorkflowRun

PASSED = ("success",)


@dataclass(frozen=True)
class History:
    passing_log: str | None = None
    source: str = ""
    passed_on_same_commit: bool = False


def job_log_header(name: str) -> str:
    """How one job's log is introduced when several are put together."""
    return f"== job {name} =="


async def _passing_logs(repo: RepoClient, jobs: list[Job], names: Collection[str]) -> str | None:
    logs = []
    for job in jobs:
        if job.name in names and job.conclusion in PASSED:
            logs.append(f"{job_log_header(job.name)}\n{await repo.job_log(job.id) or ''}")
    return "\n".join(logs) if logs else None


async def job_history(
    repo: RepoClient, run: WorkflowRun, failed: Collection[str], base_branch: str | None
) -> History:
    """The passing log of the jobs named `failed`, from the nearest run that has one."""
    for attempt in range(run.run_attempt - 1, 0, -1):
        log = await _passing_logs(repo, await repo.attempt_jobs(run.id, attempt), failed)
        if log is not None:
            return History(log, f"attempt {attempt} of this run", passed_on_same_commit=True)
    if not run.workflow_id:
        return History()
    for other in await repo.workflow_runs(run.workflow_id, head_sha=run.head_sha):
        if other.id != run.id:
            log = await _passing_logs(repo, await repo.workflow_jobs(other.id), failed)
            if log is not None:
                return History(log, f"run {other.id} on this commit", passed_on_same_commit=True)
    if base_branch:
        for other in await repo.workflow_runs(run.workflow_id, branch=base_branch):
            if other.conclusion in PASSED and other.id != run.id:
                log = await _passing_logs(repo, await repo.workflow_jobs(other.id), failed)
                return History(log, f"the last green run on {base_branch} ({other.id})")
    return History()
