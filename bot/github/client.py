"""The REST calls Shipmate makes on one repository, each through the one retry policy.

Auth lives in `bot.github.auth`, the retry policy in `bot.github.retry`, the answer types in
`bot.github.models`; all are re-exported here. Calls use githubkit's typed methods.
"""

from __future__ import annotations

import base64
import functools
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
from githubkit import GitHub
from githubkit.exception import RequestError, RequestFailed

from bot.github.auth import (
    HANDLER,
    PUSH,
    GitHubApp,
    InstallationToken,
    ScopedInstallationAuthStrategy,
)
from bot.github.models import (
    PERMISSIONS,
    CheckRun,
    CheckSuite,
    CombinedStatus,
    Comment,
    CommitStatus,
    Deployment,
    DeploymentStatus,
    Job,
    Permission,
    PullRequest,
    Reaction,
    ReviewComment,
    WorkflowRun,
    text_or_none,
)
from bot.github.replies import Replies, marked
from bot.github.retry import RetryPolicy

__all__ = [
    "HANDLER",
    "PUSH",
    "CheckRun",
    "CheckSuite",
    "CombinedStatus",
    "Comment",
    "CommitStatus",
    "Deployment",
    "DeploymentStatus",
    "GitHubApp",
    "InstallationToken",
    "Job",
    "Permission",
    "PullRequest",
    "Reaction",
    "RepoClient",
    "RetryPolicy",
    "ReviewComment",
    "ScopedInstallationAuthStrategy",
    "WorkflowRun",
]


log = structlog.get_logger("shipmate.github")


def _status(exc: RequestFailed) -> int:
    return exc.response.status_code


# (action, target, detail): called after each write succeeded; bot.db.audit.StoreAudit records it.
AuditHook = Callable[[str, str, Mapping[str, Any]], Awaitable[None]]


class RepoClient:
    """The calls Shipmate makes on one repository ("owner/name"), each through the retry policy.
    Every write (comment, reaction, label, PR, check run) is reported to `audit`. With
    `replies` (a delivery's job), each comment is posted once whatever the job's attempts
    (bot/github/replies.py)."""

    def __init__(
        self,
        github: GitHub[Any],
        repository: str,
        retry: RetryPolicy | None = None,
        audit: AuditHook | None = None,
        replies: Replies | None = None,
    ) -> None:
        self.github = github
        self.replies = replies
        self.owner, self.repo = repository.split("/", 1)
        self.full_name = repository
        self.retry = retry or RetryPolicy()
        self.audit = audit

    async def _audited(self, action: str, target: str, **detail: Any) -> None:
        if self.audit is not None:
            await self.audit(action, f"{self.full_name}{target}", detail)

    async def _json(self, call: Callable[[], Awaitable[Any]]) -> Any:
        response = await self.retry.call(call)
        return response.raw_response.json()

    async def _json_or_none(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """The answer, or None on 404."""
        try:
            return await self._json(call)
        except RequestFailed as exc:
            if _status(exc) == 404:
                return None
            raise

    # Repository, branches, files, people.

    async def repository(self) -> dict[str, Any]:
        rest, o, r = self.github.rest, self.owner, self.repo
        return dict(await self._json(lambda: rest.repos.async_get(o, r)))

    async def default_branch(self) -> str:
        return str((await self.repository())["default_branch"])

    async def branch_sha(self, branch: str) -> str | None:
        """The branch's head commit, or None when there is no such branch."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json_or_none(lambda: rest.repos.async_get_branch(o, r, branch))
        return None if data is None else str(data["commit"]["sha"])

    async def file_text(self, path: str, ref: str) -> str | None:
        """A file's text at `ref`, or None when it does not exist there (or is not a file)."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json_or_none(lambda: rest.repos.async_get_content(o, r, path, ref=ref))
        if not isinstance(data, dict) or data.get("type") != "file":
            return None
        return base64.b64decode(data.get("content") or "").decode("utf-8", errors="replace")

    async def permission(self, login: str) -> Permission:
        """admin, maintain, write, triage, read or none (the collaborator permission API)."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json_or_none(
            lambda: rest.repos.async_get_collaborator_permission_level(o, r, login)
        )
        if data is None:
            return "none"
        # `permission` folds maintain into write and triage into read; `role_name` does not.
        for value in (data.get("role_name"), data.get("permission")):
            if value in PERMISSIONS:
                return value  # type: ignore[no-any-return]
        return "none"

    # Issue and PR conversation.

    async def comment(self, number: int, body: str) -> int:
        """Comment on an issue or PR; the new comment's id (or, for a delivery's job run
        again, the id of the one an earlier attempt posted)."""
        rest, o, r = self.github.rest, self.owner, self.repo
        if self.replies is not None:
            key, known = self.replies.next()
            if known is None and self.replies.retried:
                known = next((c.id for c in await self.comments(number) if key in c.body), None)
            if known is not None:
                return known
            body = marked(body, key)
        data = await self._json(
            lambda: rest.issues.async_create_comment(o, r, number, data={"body": body})
        )
        await self._audited("comment.create", f"#{number}", comment_id=data["id"])
        return int(data["id"])

    async def edit_comment(self, comment_id: int, body: str) -> None:
        rest, o, r = self.github.rest, self.owner, self.repo
        await self._json(
            lambda: rest.issues.async_update_comment(o, r, comment_id, data={"body": body})
        )
        await self._audited("comment.edit", f" comment {comment_id}")

    async def comments(self, number: int) -> list[Comment]:
        """Every comment on an issue or PR, oldest first."""
        rest, o, r = self.github.rest, self.owner, self.repo
        found: list[Comment] = []
        for page in itertools.count(1):
            batch = await self._json(
                functools.partial(
                    rest.issues.async_list_comments, o, r, number, per_page=100, page=page
                )
            )
            found.extend(Comment.of(d) for d in batch)
            if len(batch) < 100:
                break
        return found

    async def react(self, comment_id: int, content: Reaction = "eyes") -> None:
        """A reaction on an issue or PR comment."""
        rest, o, r = self.github.rest, self.owner, self.repo
        await self._json(
            lambda: rest.reactions.async_create_for_issue_comment(
                o, r, comment_id, data={"content": content}
            )
        )
        await self._audited("reaction.create", f" comment {comment_id}", content=content)

    async def react_eyes(self, comment_id: int) -> None:
        """👀 on a comment: "seen, working on it". A courtesy: when GitHub refuses it (the
        comment is gone: 404) or cannot take it now, the work goes on without it."""
        try:
            await self.react(comment_id, "eyes")
        except (RequestFailed, RequestError) as exc:
            log.info("github.reaction_skipped", comment_id=comment_id, error=type(exc).__name__)

    async def react_issue(self, number: int, content: Reaction = "eyes") -> None:
        """A reaction on the issue or PR itself."""
        rest, o, r = self.github.rest, self.owner, self.repo
        await self._json(
            lambda: rest.reactions.async_create_for_issue(o, r, number, data={"content": content})
        )
        await self._audited("reaction.create", f"#{number}", content=content)

    async def add_labels(self, number: int, labels: Sequence[str]) -> None:
        rest, o, r = self.github.rest, self.owner, self.repo
        await self._json(
            lambda: rest.issues.async_add_labels(o, r, number, data={"labels": list(labels)})
        )
        await self._audited("label.add", f"#{number}", labels=list(labels))

    async def remove_label(self, number: int, label: str) -> None:
        """Remove a label; already gone is fine."""
        rest, o, r = self.github.rest, self.owner, self.repo
        await self._json_or_none(lambda: rest.issues.async_remove_label(o, r, number, label))
        await self._audited("label.remove", f"#{number}", label=label)

    # Pull requests and reviews.

    async def create_pull(
        self, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequest:
        rest, o, r = self.github.rest, self.owner, self.repo
        pull = PullRequest.of(
            await self._json(
                lambda: rest.pulls.async_create(
                    o, r, head=head, base=base, title=title, body=body, draft=draft
                )
            )
        )
        await self._audited("pull_request.create", f"#{pull.number}", head=head, base=base)
        return pull

    async def update_pull(
        self, number: int, *, title: str | None = None, body: str | None = None
    ) -> PullRequest:
        rest, o, r = self.github.rest, self.owner, self.repo
        payload = {k: v for k, v in (("title", title), ("body", body)) if v is not None}
        pull = PullRequest.of(
            await self._json(lambda: rest.pulls.async_update(o, r, number, data=payload))  # type: ignore[call-overload]
        )
        await self._audited("pull_request.update", f"#{number}", fields=sorted(payload))
        return pull

    async def pull(self, number: int) -> PullRequest | None:
        data = await self.pull_data(number)
        return None if data is None else PullRequest.of(data)

    async def pull_data(self, number: int) -> dict[str, Any] | None:
        """The pull request as GitHub sends it (author, head, merge state), or None on 404."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data: dict[str, Any] | None = await self._json_or_none(
            lambda: rest.pulls.async_get(o, r, number)
        )
        return data

    async def issue(self, number: int) -> dict[str, Any]:
        """The issue (or pull request, as an issue) as GitHub sends it: title, body, author."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data: dict[str, Any] = await self._json(lambda: rest.issues.async_get(o, r, number))
        return data

    async def open_pulls_for_branch(self, branch: str) -> list[PullRequest]:
        """Open PRs whose head is `branch` in this repository."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json(
            lambda: rest.pulls.async_list(o, r, state="open", head=f"{o}:{branch}", per_page=100)
        )
        return [PullRequest.of(d) for d in data]

    async def open_pulls_headed(self, prefix: str, *, max_pages: int = 5) -> list[dict[str, Any]]:
        """Open PRs (as GitHub sends them) whose head branch starts with `prefix`, newest
        first, from the newest `max_pages` hundred open PRs."""
        rest, o, r = self.github.rest, self.owner, self.repo
        found: list[dict[str, Any]] = []
        for page in range(1, max_pages + 1):
            batch = await self._json(
                functools.partial(
                    rest.pulls.async_list,
                    o,
                    r,
                    state="open",
                    sort="created",
                    direction="desc",
                    per_page=100,
                    page=page,
                )
            )
            found += [p for p in batch if str(p["head"]["ref"]).startswith(prefix)]
            if len(batch) < 100:
                break
        return found

    async def pulls_for_commit(self, sha: str) -> list[dict[str, Any]]:
        """The pull requests a commit belongs to: open ones it is the head of, and merged ones
        it came from (GET commits/{sha}/pulls)."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json_or_none(
            lambda: rest.repos.async_list_pull_requests_associated_with_commit(
                o, r, sha, per_page=100
            )
        )
        return list(data or [])

    async def review_comments(self, number: int, review_id: int) -> list[ReviewComment]:
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json(
            lambda: rest.pulls.async_list_comments_for_review(o, r, number, review_id, per_page=100)
        )
        return [ReviewComment.of(d) for d in data]

    async def reply_to_review_comment(self, number: int, comment_id: int, body: str) -> int:
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json(
            lambda: rest.pulls.async_create_reply_for_review_comment(
                o, r, number, comment_id, data={"body": body}
            )
        )
        await self._audited("review_comment.reply", f"#{number}", comment_id=data["id"])
        return int(data["id"])

    # Checks, statuses, Actions, deployments.

    async def create_check_run(
        self,
        *,
        name: str,
        head_sha: str,
        status: str = "in_progress",
        conclusion: str | None = None,
        title: str | None = None,
        summary: str | None = None,
        details_url: str | None = None,
        actions: Sequence[Mapping[str, str]] | None = None,
    ) -> CheckRun:
        rest, o, r = self.github.rest, self.owner, self.repo
        payload: dict[str, Any] = {"name": name, "head_sha": head_sha, "status": status}
        payload.update(_check_fields(conclusion, title, summary, details_url, actions))
        run = CheckRun.of(await self._json(lambda: rest.checks.async_create(o, r, data=payload)))  # type: ignore[call-overload]
        await self._audited("check_run.create", f"@{head_sha}", name=name, status=status)
        return run

    async def update_check_run(
        self,
        check_run_id: int,
        *,
        status: str | None = None,
        conclusion: str | None = None,
        title: str | None = None,
        summary: str | None = None,
        details_url: str | None = None,
        actions: Sequence[Mapping[str, str]] | None = None,
    ) -> CheckRun:
        rest, o, r = self.github.rest, self.owner, self.repo
        payload: dict[str, Any] = {} if status is None else {"status": status}
        payload.update(_check_fields(conclusion, title, summary, details_url, actions))
        run = CheckRun.of(
            await self._json(lambda: rest.checks.async_update(o, r, check_run_id, data=payload))  # type: ignore[call-overload]
        )
        await self._audited("check_run.update", f" check run {check_run_id}", status=status)
        return run

    async def check_run(self, check_run_id: int) -> CheckRun:
        rest, o, r = self.github.rest, self.owner, self.repo
        return CheckRun.of(await self._json(lambda: rest.checks.async_get(o, r, check_run_id)))

    async def check_suite(self, check_suite_id: int) -> CheckSuite:
        rest, o, r = self.github.rest, self.owner, self.repo
        return CheckSuite.of(
            await self._json(lambda: rest.checks.async_get_suite(o, r, check_suite_id))
        )

    async def suite_check_runs(self, check_suite_id: int) -> list[CheckRun]:
        """The latest check runs of a check suite."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json(
            lambda: rest.checks.async_list_for_suite(o, r, check_suite_id, per_page=100)
        )
        return [CheckRun.of(d) for d in data.get("check_runs") or []]

    async def combined_status(self, ref: str) -> CombinedStatus:
        rest, o, r = self.github.rest, self.owner, self.repo
        d = await self._json(
            lambda: rest.repos.async_get_combined_status_for_ref(o, r, ref, per_page=100)
        )
        statuses = tuple(
            CommitStatus(
                str(s.get("context", "")),
                str(s.get("state", "")),
                text_or_none(s.get("description")),
                text_or_none(s.get("target_url")),
            )
            for s in d.get("statuses") or []
        )
        return CombinedStatus(str(d.get("sha", ref)), str(d.get("state", "")), statuses)

    async def workflow_run(self, run_id: int) -> WorkflowRun:
        rest, o, r = self.github.rest, self.owner, self.repo
        return WorkflowRun.of(
            await self._json(lambda: rest.actions.async_get_workflow_run(o, r, run_id))
        )

    async def workflow_jobs(self, run_id: int) -> list[Job]:
        """The latest attempt's jobs of a workflow run."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json(
            lambda: rest.actions.async_list_jobs_for_workflow_run(o, r, run_id, per_page=100)
        )
        return [Job.of(d) for d in data.get("jobs") or []]

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

    async def attempt_jobs(self, run_id: int, attempt: int) -> list[Job]:
        """The jobs of one attempt of a workflow run (a re-run is a new attempt)."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json(
            lambda: rest.actions.async_list_jobs_for_workflow_run_attempt(
                o, r, run_id, attempt, per_page=100
            )
        )
        return [Job.of(d) for d in data.get("jobs") or []]

    async def rerun_failed_jobs(self, run_id: int) -> None:
        """Start a new attempt of the run's failed jobs (needs `actions: write`)."""
        rest, o, r = self.github.rest, self.owner, self.repo
        await self.retry.call(lambda: rest.actions.async_re_run_workflow_failed_jobs(o, r, run_id))
        await self._audited("actions.rerun_failed_jobs", f"/actions/runs/{run_id}")

    async def pull_files(self, number: int) -> list[str]:
        """The paths a pull request changes (GitHub lists up to 3,000)."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json(lambda: rest.pulls.async_list_files(o, r, number, per_page=100))
        return [str(d.get("filename", "")) for d in data]

    async def job_log(self, job_id: int) -> str | None:
        """A job's plain-text log (GitHub answers 302 to a short-lived URL; we follow it), or
        None when it is gone."""
        rest, o, r = self.github.rest, self.owner, self.repo
        try:
            response = await self.retry.call(
                lambda: rest.actions.async_download_job_logs_for_workflow_run(o, r, job_id)
            )
        except RequestFailed as exc:
            if _status(exc) in (404, 410):
                return None
            raise
        return response.raw_response.text

    async def deployment(self, deployment_id: int) -> Deployment | None:
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json_or_none(
            lambda: rest.repos.async_get_deployment(o, r, deployment_id)
        )
        return None if data is None else Deployment.of(data)

    async def deployment_statuses(self, deployment_id: int) -> list[DeploymentStatus]:
        """Newest first, as GitHub lists them."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json(
            lambda: rest.repos.async_list_deployment_statuses(o, r, deployment_id, per_page=100)
        )
        return [DeploymentStatus.of(d) for d in data]


def _check_fields(
    conclusion: str | None,
    title: str | None,
    summary: str | None,
    details_url: str | None,
    actions: Sequence[Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if actions is not None:
        # Buttons on the check run (at most three); GitHub sends check_run.requested_action.
        fields["actions"] = [dict(action) for action in actions]
    if conclusion is not None:
        # A conclusion implies the run is done; GitHub requires both together.
        fields["status"] = "completed"
        fields["conclusion"] = conclusion
    if title is not None or summary is not None:
        fields["output"] = {"title": title or "", "summary": summary or ""}
    if details_url is not None:
        fields["details_url"] = details_url
    return fields
