"""GitHub Actions: workflow runs, their jobs and logs, and re-running the failed jobs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from githubkit.exception import RequestFailed

from bot.github.calls import PAGE, RepoCalls, status_of
from bot.github.models import Job, WorkflowRun


class ActionsCalls(RepoCalls):
    async def workflow_run(self, run_id: int) -> WorkflowRun:
        rest, o, r = self.github.rest, self.owner, self.repo
        return WorkflowRun.of(
            await self._json(lambda: rest.actions.async_get_workflow_run(o, r, run_id))
        )

    async def workflow_runs(
        self, workflow_id: int, *, branch: str | None = None, head_sha: str | None = None
    ) -> list[WorkflowRun]:
        """A workflow's completed runs, newest first, on a branch or a commit."""
        rest, o, r = self.github.rest, self.owner, self.repo
        filters: dict[str, Any] = {"status": "completed", "per_page": 30}
        if branch is not None:
            filters["branch"] = branch
        if head_sha is not None:
            filters["head_sha"] = head_sha
        data = await self._json(
            lambda: rest.actions.async_list_workflow_runs(o, r, workflow_id, **filters)
        )
        return [WorkflowRun.of(d) for d in data.get("workflow_runs") or []]

    async def workflow_jobs(self, run_id: int) -> list[Job]:
        """The latest attempt's jobs of a workflow run."""
        rest, o, r = self.github.rest, self.owner, self.repo
        return await self._jobs(
            lambda: rest.actions.async_list_jobs_for_workflow_run(o, r, run_id, per_page=PAGE)
        )

    async def attempt_jobs(self, run_id: int, attempt: int) -> list[Job]:
        """The jobs of one attempt of a workflow run (a re-run is a new attempt)."""
        rest, o, r = self.github.rest, self.owner, self.repo
        return await self._jobs(
            lambda: rest.actions.async_list_jobs_for_workflow_run_attempt(
                o, r, run_id, attempt, per_page=PAGE
            )
        )

    async def _jobs(self, call: Callable[[], Awaitable[Any]]) -> list[Job]:
        data = await self._json(call)
        return [Job.of(d) for d in data.get("jobs") or []]

    async def rerun_failed_jobs(self, run_id: int) -> None:
        """Start a new attempt of the run's failed jobs (needs `actions: write`)."""
        rest, o, r = self.github.rest, self.owner, self.repo
        await self.retry.call(lambda: rest.actions.async_re_run_workflow_failed_jobs(o, r, run_id))
        await self._audited("actions.rerun_failed_jobs", f"/actions/runs/{run_id}")

    async def job_log(self, job_id: int) -> str | None:
        """A job's plain-text log (GitHub answers 302 to a short-lived URL; we follow it), or
        None when it is gone."""
        rest, o, r = self.github.rest, self.owner, self.repo
        try:
            response = await self.retry.call(
                lambda: rest.actions.async_download_job_logs_for_workflow_run(o, r, job_id)
            )
        except RequestFailed as exc:
            if status_of(exc) in (404, 410):
                return None
            raise
        return response.raw_response.text
