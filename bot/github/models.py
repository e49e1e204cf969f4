"""What Shipmate reads back from GitHub's REST answers: small frozen values parsed from JSON.

githubkit's strict models reject payloads that leave out fields GitHub often omits, so only the
fields Shipmate uses are read, leniently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Permission = Literal["admin", "maintain", "write", "triage", "read", "none"]
Reaction = Literal["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]
PERMISSIONS: tuple[Permission, ...] = ("admin", "maintain", "write", "triage", "read", "none")


def text_or_none(value: Any) -> str | None:
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
            head_repo=text_or_none((head.get("repo") or {}).get("full_name")),
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
    # The creator's own reference (Shipmate's: the delivery whose job created it).
    external_id: str | None = None

    @classmethod
    def of(cls, d: dict[str, Any]) -> CheckRun:
        output = d.get("output") or {}
        suite = d.get("check_suite") or {}
        return cls(
            id=int(d["id"]),
            name=str(d.get("name", "")),
            head_sha=str(d.get("head_sha", "")),
            status=str(d.get("status", "")),
            conclusion=text_or_none(d.get("conclusion")),
            title=text_or_none(output.get("title")),
            summary=text_or_none(output.get("summary")),
            text=text_or_none(output.get("text")),
            details_url=text_or_none(d.get("details_url")),
            app_slug=text_or_none((d.get("app") or {}).get("slug")),
            check_suite_id=None if suite.get("id") is None else int(suite["id"]),
            external_id=text_or_none(d.get("external_id")),
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
            text_or_none(d.get("head_branch")),
            text_or_none(d.get("status")),
            text_or_none(d.get("conclusion")),
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
    workflow_id: int = 0
    run_attempt: int = 1
    # Who started the latest attempt (a re-run's, not the first run's actor).
    triggering_actor: str | None = None

    @classmethod
    def of(cls, d: dict[str, Any]) -> WorkflowRun:
        return cls(
            int(d["id"]),
            str(d.get("name") or ""),
            str(d.get("head_sha", "")),
            text_or_none(d.get("head_branch")),
            text_or_none(d.get("status")),
            text_or_none(d.get("conclusion")),
            str(d.get("html_url", "")),
            int(d.get("workflow_id") or 0),
            int(d.get("run_attempt") or 1),
            text_or_none((d.get("triggering_actor") or {}).get("login")),
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
            text_or_none(d.get("status")),
            text_or_none(d.get("conclusion")),
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
            text_or_none(d.get("description")),
            text_or_none(d.get("log_url")),
            text_or_none(d.get("target_url")),
            text_or_none(d.get("environment_url")),
        )
