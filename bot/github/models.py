"""What Shipmate reads back from GitHub's REST answers: small frozen values parsed from JSON.

githubkit's strict models reject payloads that leave out fields GitHub often omits, so only the
fields Shipmate uses are read, leniently: each by the rule of its type (`read`), from the key of
its name unless its `of` says where else.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any, Literal, Self, TypeVar

Permission = Literal["admin", "maintain", "write", "triage", "read", "none"]
Reaction = Literal["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]
PERMISSIONS: tuple[Permission, ...] = ("admin", "maintain", "write", "triage", "read", "none")


T = TypeVar("T")


def text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


# How a field of each type is read from a JSON value; one of another type is kept as found.
_RULES: dict[Any, Callable[[Any], Any]] = {
    int: int,
    str: lambda value: "" if value is None else str(value),
    str | None: text_or_none,
    int | None: lambda value: None if value is None else int(value),
    bool: bool,
}


def read(cls: type[T], answer: dict[str, Any], **found: Any) -> T:
    """`cls` (a dataclass) from GitHub's JSON `answer`: each field from `found`, else from the
    answer's key of its name, converted by the rule of its type. Absent or null, a field takes
    its default if it has one; a `str` is "", and an `int` without a default is missing."""
    hints, values = typing.get_type_hints(cls), {}
    for field in fields(cls):  # type: ignore[arg-type]
        name, hint = field.name, hints[field.name]
        value = found[name] if name in found else answer.get(name)
        if value is None and field.default is not MISSING:
            values[name] = field.default
        elif value is None and hint is int:
            raise KeyError(name)
        else:
            values[name] = _RULES.get(hint, lambda kept: kept)(value)
    return cls(**values)


class Answer:
    """A value read from one of GitHub's JSON answers by `read`."""

    @classmethod
    def of(cls, answer: dict[str, Any]) -> Self:
        return read(cls, answer)


def _login(answer: dict[str, Any]) -> Any:
    return (answer.get("user") or {}).get("login")


@dataclass(frozen=True)
class Comment(Answer):
    """`user` is its author's login; `user_type` GitHub's type of that account ("User", "Bot")."""

    id: int
    body: str
    user: str
    html_url: str
    user_type: str = ""

    @classmethod
    def of(cls, answer: dict[str, Any]) -> Self:
        user_type = (answer.get("user") or {}).get("type")
        return read(cls, answer, user=_login(answer), user_type=user_type)


@dataclass(frozen=True)
class PullRequest(Answer):
    number: int
    state: str
    draft: bool
    head_ref: str
    head_sha: str
    head_repo: str | None  # "owner/name"; differs from the base repository for a fork PR
    base_ref: str
    html_url: str

    @classmethod
    def of(cls, answer: dict[str, Any]) -> Self:
        head, base = answer.get("head") or {}, answer.get("base") or {}
        return read(
            cls,
            answer,
            state=answer.get("state", "open"),
            head_ref=head.get("ref"),
            head_sha=head.get("sha"),
            head_repo=(head.get("repo") or {}).get("full_name"),
            base_ref=base.get("ref"),
        )


@dataclass(frozen=True)
class ReviewComment(Answer):
    id: int
    path: str
    line: int | None
    body: str
    user: str
    in_reply_to_id: int | None

    @classmethod
    def of(cls, answer: dict[str, Any]) -> Self:
        line = answer.get("line")
        line = answer.get("original_line") if line is None else line
        return read(cls, answer, line=line, user=_login(answer))


@dataclass(frozen=True)
class CheckRun(Answer):
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
    def of(cls, answer: dict[str, Any]) -> Self:
        output = answer.get("output") or {}
        return read(
            cls,
            answer,
            title=output.get("title"),
            summary=output.get("summary"),
            text=output.get("text"),
            app_slug=(answer.get("app") or {}).get("slug"),
            check_suite_id=(answer.get("check_suite") or {}).get("id"),
        )


@dataclass(frozen=True)
class CheckSuite(Answer):
    id: int
    head_sha: str
    head_branch: str | None
    status: str | None
    conclusion: str | None


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
class WorkflowRun(Answer):
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
    def of(cls, answer: dict[str, Any]) -> Self:
        return read(
            cls, answer, triggering_actor=(answer.get("triggering_actor") or {}).get("login")
        )


@dataclass(frozen=True)
class Job(Answer):
    id: int
    name: str
    status: str | None
    conclusion: str | None
    failed_steps: tuple[str, ...]

    @classmethod
    def of(cls, answer: dict[str, Any]) -> Self:
        steps = answer.get("steps") or []
        failed = tuple(str(s.get("name", "")) for s in steps if s.get("conclusion") == "failure")
        return read(cls, answer, failed_steps=failed)


@dataclass(frozen=True)
class Deployment(Answer):
    id: int
    sha: str
    ref: str
    environment: str


@dataclass(frozen=True)
class DeploymentStatus(Answer):
    id: int
    state: str
    description: str | None
    log_url: str | None
    target_url: str | None
    environment_url: str | None
