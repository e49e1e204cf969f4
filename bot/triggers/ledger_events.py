"""Typed payloads of the events the ledger records (handlers/ledger.py): CI jobs and suites on
Shipmate's branches, and what people do on its pull requests. As in bot/triggers/events.py, only
the fields read, with GitHub's own nullability; the rest of a payload is ignored."""

from __future__ import annotations

from pydantic import Field

from bot.triggers.events import Account, App, Event, Issue, Payload


class Timed(Payload):
    """A CI job, check run or check suite: GitHub's id, its commit and how it ended."""

    id: int
    head_sha: str | None = None
    conclusion: str | None = None


class WorkflowJobItem(Timed):
    name: str | None = None
    head_branch: str | None = None
    started_at: str | None = None
    completed_at: str | None = None


class WorkflowJob(Event):
    workflow_job: WorkflowJobItem


class SuiteBranch(Payload):
    head_branch: str | None = None


class LedgerCheckRunItem(Timed):
    name: str | None = None
    app: App | None = None
    check_suite: SuiteBranch = Field(default_factory=SuiteBranch)
    started_at: str | None = None
    completed_at: str | None = None


class LedgerCheckRun(Event):
    check_run: LedgerCheckRunItem


class LedgerCheckSuiteItem(Timed):
    app: App | None = None
    head_branch: str | None = None
    latest_check_runs_count: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


class LedgerCheckSuite(Event):
    check_suite: LedgerCheckSuiteItem


class HeadRef(Payload):
    ref: str = ""


class Pull(Payload):
    number: int
    user: Account | None = None
    head: HeadRef = Field(default_factory=HeadRef)
    state: str | None = None
    merged: bool | None = None
    created_at: str | None = None
    merged_at: str | None = None
    closed_at: str | None = None


class PullRequest(Event):
    pull_request: Pull


class Remark(Payload):
    """A review or a comment: who wrote it and when."""

    id: int
    user: Account | None = None
    submitted_at: str | None = None
    created_at: str | None = None


class ReviewSubmitted(Event):
    pull_request: Pull
    review: Remark


class ReviewComment(Event):
    pull_request: Pull
    comment: Remark


class PullComment(Event):
    issue: Issue
    comment: Remark
