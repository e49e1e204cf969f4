"""The REST calls Shipmate makes on one repository, each through the one retry policy.

Auth lives in `bot.github_auth`, the retry policy in `bot.github_retry`; both are re-exported
here. Calls use githubkit's typed methods; answers are small frozen dataclasses read from
GitHub's JSON (githubkit's strict models reject payloads that leave out fields GitHub often
omits, so we parse only what we use).
"""

from __future__ import annotations

import base64
import functools
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from githubkit import GitHub
from githubkit.exception import RequestFailed

from bot.github_auth import PUSH, READ, GitHubApp, InstallationToken, ScopedInstallationAuthStrategy
from bot.github_retry import RetryPolicy

__all__ = [
    "PUSH",
    "READ",
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
    "PullRequest",
    "RepoClient",
    "RetryPolicy",
    "ReviewComment",
    "ScopedInstallationAuthStrategy",
    "WorkflowRun",
]

Permission = Literal["admin", "maintain", "write", "triage", "read", "none"]
Reaction = Literal["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]
_PERMISSIONS = ("admin", "maintain", "write", "triage", "read", "none")


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Comment:
    id: int
    body: str
    user: str
    html_url: str

    @classmethod
    def of(cls, d: dict[str, Any]) -> Comment:
        user = d.get("user") or {}
        return cls(int(d["id"]), d.get("body") or "", user.get("login", ""), d.get("html_url", ""))


@dataclass(frozen=True)
class PullRequest:
    number: int
    state: str
    draft: bool
    head_ref: str
    head_sha: str
    head_repo: str | None  # "owner/name"; differs from the base repository for a fork PR
    base_ref: str
    html_url: str

    @classmethod
    def of(cls, d: dict[str, Any]) -> PullRequest:
        head, base = d.get("head") or {}, d.get("base") or {}
        return cls(
            number=int(d["number"]),
            state=str(d.get("state", "open")),
            draft=bool(d.get("draft")),
            head_ref=str(head.get("ref", "")),
            head_sha=str(head.get("sha", "")),
            head_repo=_str((head.get("repo") or {}).get("full_name")),
            base_ref=str(base.get("ref", "")),
            html_url=str(d.get("html_url", "")),
        )


@dataclass(frozen=True)
class ReviewComment:
    id: int
    path: str
    line: int | None
    body: str
    user: str
    in_reply_to_id: int | None

    @classmethod
    def of(cls, d: dict[str, Any]) -> ReviewComment:
        line = d.get("line") if d.get("line") is not None else d.get("original_line")
        reply_to = d.get("in_reply_to_id")
        return cls(
            id=int(d["id"]),
            path=str(d.get("path", "")),
            line=None if line is None else int(line),
            body=d.get("body") or "",
            user=(d.get("user") or {}).get("login", ""),
            in_reply_to_id=None if reply_to is None else int(reply_to),
        )


@dataclass(frozen=True)
class CheckRun:
    id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    title: str | None
    summary: str | None
    text: str | None
    details_url: str | None
    app_slug: str | None
    check_suite_id: int | None

    @classmethod
    def of(cls, d: dict[str, Any]) -> CheckRun:
        output = d.get("output") or {}
        suite = d.get("check_suite") or {}
        return cls(
            id=int(d["id"]),
            name=str(d.get("name", "")),
            head_sha=str(d.get("head_sha", "")),
            status=str(d.get("status", "")),
            conclusion=_str(d.get("conclusion")),
            title=_str(output.get("title")),
            summary=_str(output.get("summary")),
            text=_str(output.get("text")),
            details_url=_str(d.get("details_url")),
            app_slug=_str((d.get("app") or {}).get("slug")),
            check_suite_id=None if suite.get("id") is None else int(suite["id"]),
        )


@dataclass(frozen=True)
class CheckSuite:
    id: int
    head_sha: str
    head_branch: str | None
    status: str | None
    conclusion: str | None

    @classmethod
    def of(cls, d: dict[str, Any]) -> CheckSuite:
        return cls(
            int(d["id"]),
            str(d.get("head_sha", "")),
            _str(d.get("head_branch")),
            _str(d.get("status")),
            _str(d.get("conclusion")),
        )


@dataclass(frozen=True)
class CommitStatus:
    context: str
    state: str
    description: str | None
    target_url: str | None


@dataclass(frozen=True)
class CombinedStatus:
    sha: str
    state: str  # failure, pending or success
    statuses: tuple[CommitStatus, ...]


@dataclass(frozen=True)
class WorkflowRun:
    id: int
    name: str
    head_sha: str
    head_branch: str | None
    status: str | None
    conclusion: str | None
    html_url: str

    @classmethod
    def of(cls, d: dict[str, Any]) -> WorkflowRun:
        return cls(
            int(d["id"]),
            str(d.get("name") or ""),
            str(d.get("head_sha", "")),
            _str(d.get("head_branch")),
            _str(d.get("status")),
            _str(d.get("conclusion")),
            str(d.get("html_url", "")),
        )


@dataclass(frozen=True)
class Job:
    id: int
    name: str
    status: str | None
    conclusion: str | None
    failed_steps: tuple[str, ...]

    @classmethod
    def of(cls, d: dict[str, Any]) -> Job:
        steps = d.get("steps") or []
        failed = tuple(str(s.get("name", "")) for s in steps if s.get("conclusion") == "failure")
        return cls(
            int(d["id"]),
            str(d.get("name", "")),
            _str(d.get("status")),
            _str(d.get("conclusion")),
            failed,
        )


@dataclass(frozen=True)
class Deployment:
    id: int
    sha: str
    ref: str
    environment: str

    @classmethod
    def of(cls, d: dict[str, Any]) -> Deployment:
        return cls(
            int(d["id"]),
            str(d.get("sha", "")),
            str(d.get("ref", "")),
            str(d.get("environment", "")),
        )


@dataclass(frozen=True)
class DeploymentStatus:
    id: int
    state: str
    description: str | None
    log_url: str | None
    target_url: str | None
    environment_url: str | None

    @classmethod
    def of(cls, d: dict[str, Any]) -> DeploymentStatus:
        return cls(
            int(d["id"]),
            str(d.get("state", "")),
            _str(d.get("description")),
            _str(d.get("log_url")),
            _str(d.get("target_url")),
            _str(d.get("environment_url")),
        )


def _status(exc: RequestFailed) -> int:
    return exc.response.status_code


class RepoClient:
    """The calls Shipmate makes on one repository ("owner/name"), each through the retry policy."""

    def __init__(
        self, github: GitHub[Any], repository: str, retry: RetryPolicy | None = None
    ) -> None:
        self.github = github
        self.owner, self.repo = repository.split("/", 1)
        self.full_name = repository
        self.retry = retry or RetryPolicy()

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
            if value in _PERMISSIONS:
                return value  # type: ignore[no-any-return]
        return "none"

    # Issue and PR conversation.

    async def comment(self, number: int, body: str) -> int:
        """Comment on an issue or PR; the new comment's id."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json(
            lambda: rest.issues.async_create_comment(o, r, number, data={"body": body})
        )
        return int(data["id"])

    async def edit_comment(self, comment_id: int, body: str) -> None:
        rest, o, r = self.github.rest, self.owner, self.repo
        await self._json(
            lambda: rest.issues.async_update_comment(o, r, comment_id, data={"body": body})
        )

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

    async def react_eyes(self, comment_id: int) -> None:
        """👀 on a comment: "seen, working on it"."""
        await self.react(comment_id, "eyes")

    async def react_issue(self, number: int, content: Reaction = "eyes") -> None:
        """A reaction on the issue or PR itself."""
        rest, o, r = self.github.rest, self.owner, self.repo
        await self._json(
            lambda: rest.reactions.async_create_for_issue(o, r, number, data={"content": content})
        )

    async def add_labels(self, number: int, labels: Sequence[str]) -> None:
        rest, o, r = self.github.rest, self.owner, self.repo
        await self._json(
            lambda: rest.issues.async_add_labels(o, r, number, data={"labels": list(labels)})
        )

    async def remove_label(self, number: int, label: str) -> None:
        """Remove a label; already gone is fine."""
        rest, o, r = self.github.rest, self.owner, self.repo
        await self._json_or_none(lambda: rest.issues.async_remove_label(o, r, number, label))

    # Pull requests and reviews.

    async def create_pull(
        self, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequest:
        rest, o, r = self.github.rest, self.owner, self.repo
        return PullRequest.of(
            await self._json(
                lambda: rest.pulls.async_create(
                    o, r, head=head, base=base, title=title, body=body, draft=draft
                )
            )
        )

    async def update_pull(
        self, number: int, *, title: str | None = None, body: str | None = None
    ) -> PullRequest:
        rest, o, r = self.github.rest, self.owner, self.repo
        payload = {k: v for k, v in (("title", title), ("body", body)) if v is not None}
        return PullRequest.of(
            await self._json(lambda: rest.pulls.async_update(o, r, number, data=payload))  # type: ignore[call-overload]
        )

    async def pull(self, number: int) -> PullRequest | None:
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json_or_none(lambda: rest.pulls.async_get(o, r, number))
        return None if data is None else PullRequest.of(data)

    async def open_pulls_for_branch(self, branch: str) -> list[PullRequest]:
        """Open PRs whose head is `branch` in this repository."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json(
            lambda: rest.pulls.async_list(o, r, state="open", head=f"{o}:{branch}", per_page=100)
        )
        return [PullRequest.of(d) for d in data]

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
    ) -> CheckRun:
        rest, o, r = self.github.rest, self.owner, self.repo
        payload: dict[str, Any] = {"name": name, "head_sha": head_sha, "status": status}
        payload.update(_check_fields(conclusion, title, summary, details_url))
        return CheckRun.of(await self._json(lambda: rest.checks.async_create(o, r, data=payload)))  # type: ignore[call-overload]

    async def update_check_run(
        self,
        check_run_id: int,
        *,
        status: str | None = None,
        conclusion: str | None = None,
        title: str | None = None,
        summary: str | None = None,
        details_url: str | None = None,
    ) -> CheckRun:
        rest, o, r = self.github.rest, self.owner, self.repo
        payload: dict[str, Any] = {} if status is None else {"status": status}
        payload.update(_check_fields(conclusion, title, summary, details_url))
        return CheckRun.of(
            await self._json(lambda: rest.checks.async_update(o, r, check_run_id, data=payload))  # type: ignore[call-overload]
        )

    async def check_run(self, check_run_id: int) -> CheckRun:
        rest, o, r = self.github.rest, self.owner, self.repo
        return CheckRun.of(await self._json(lambda: rest.checks.async_get(o, r, check_run_id)))

    async def check_suite(self, check_suite_id: int) -> CheckSuite:
        rest, o, r = self.github.rest, self.owner, self.repo
        return CheckSuite.of(
            await self._json(lambda: rest.checks.async_get_suite(o, r, check_suite_id))
        )

    async def combined_status(self, ref: str) -> CombinedStatus:
        rest, o, r = self.github.rest, self.owner, self.repo
        d = await self._json(
            lambda: rest.repos.async_get_combined_status_for_ref(o, r, ref, per_page=100)
        )
        statuses = tuple(
            CommitStatus(
                str(s.get("context", "")),
                str(s.get("state", "")),
                _str(s.get("description")),
                _str(s.get("target_url")),
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
    conclusion: str | None, title: str | None, summary: str | None, details_url: str | None
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if conclusion is not None:
        # A conclusion implies the run is done; GitHub requires both together.
        fields["status"] = "completed"
        fields["conclusion"] = conclusion
    if title is not None or summary is not None:
        fields["output"] = {"title": title or "", "summary": summary or ""}
    if details_url is not None:
        fields["details_url"] = details_url
    return fields
