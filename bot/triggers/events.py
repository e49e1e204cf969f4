"""Typed webhook payloads: for each event a handler takes, the fields it reads, validated — one
model an event, holding what every handler of it reads (the ledger's and the rest).

Why not githubkit's webhook models: they follow today's OpenAPI description, which calls fields
required that GitHub's recorded payloads (tests/ and shared fixtures, octokit's examples) leave
out — `label.archived_at`, `installation.app_slug`, `workflow_run.display_title`, a check run's
`app.permissions`... githubkit 0.16.1 refuses 38 of the 129 recorded payloads, always on a field no
handler reads, and a newer githubkit only follows a newer description. These models hold what the
handlers rely on, with GitHub's own nullability; everything else in a payload is ignored, so a
field GitHub adds or drops elsewhere changes nothing, and a payload that lacks what a handler
reads fails once, by name (`pydantic.ValidationError`), instead of deep inside the handler.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Payload(BaseModel):
    """A part of a payload: extra fields ignored, nothing changed after parsing."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Account(Payload):
    login: str = ""
    type: str | None = None


class Event(Payload):
    """What every event carries that handlers read."""

    sender: Account | None = None


# Comments, labels, pull requests, reviews.


class Comment(Payload):
    """An issue comment or a review comment."""

    id: int
    body: str | None = None
    user: Account | None = None
    created_at: str | None = None


class Issue(Payload):
    """An issue, or a pull request seen as one: then `pull_request` holds its links."""

    number: int
    pull_request: dict[str, object] | None = None


class IssueComment(Event):
    comment: Comment
    issue: Issue


class Label(Payload):
    name: str


class IssueLabel(Event):
    label: Label | None = None  # GitHub omits it when the label was deleted meanwhile
    issue: Issue


class PullNumber(Payload):
    number: int


class HeadRef(Payload):
    ref: str = ""


class Pull(PullNumber):
    user: Account | None = None
    head: HeadRef = Field(default_factory=HeadRef)
    merged: bool | None = None
    created_at: str | None = None
    merged_at: str | None = None
    closed_at: str | None = None


class PullRequest(Event):
    pull_request: Pull


class Review(Payload):
    id: int
    state: str
    body: str | None = None
    user: Account | None = None
    submitted_at: str | None = None


class PullRequestReview(Event):
    review: Review
    pull_request: Pull


class PullRequestReviewComment(Event):
    comment: Comment
    pull_request: Pull


# CI: check runs, check suites, workflow runs and jobs, statuses.


class App(Payload):
    slug: str | None = None


class CiItem(Payload):
    """A check run or suite, a workflow run or job: GitHub's id, its commit, how it ended."""

    id: int
    head_sha: str
    conclusion: str | None = None


class CheckItem(CiItem):
    """A check run, check suite or workflow run, with the PRs it is for and the app running it."""

    pull_requests: list[PullNumber] = Field(default_factory=list)
    app: App | None = None


class CheckOutput(Payload):
    title: str | None = None
    summary: str | None = None
    text: str | None = None

    def joined(self) -> str:
        return "\n".join(part for part in (self.title, self.summary, self.text) if part).strip()


class OnBranch(Payload):
    head_branch: str | None = None


class Span(Payload):
    """When a check run or a job started and completed (ISO 8601; the ledger times CI by it)."""

    started_at: str | None = None
    completed_at: str | None = None


class CheckRunItem(CheckItem, Span):
    name: str
    output: CheckOutput = Field(default_factory=CheckOutput)
    check_suite: OnBranch = Field(default_factory=OnBranch)


class CheckRun(Event):
    check_run: CheckRunItem


class CheckSuiteItem(CheckItem, OnBranch):
    latest_check_runs_count: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


class CheckSuite(Event):
    check_suite: CheckSuiteItem


class WorkflowRunItem(CheckItem):
    name: str | None = None


class WorkflowRun(Event):
    workflow_run: WorkflowRunItem


class WorkflowJobItem(CiItem, OnBranch, Span):
    name: str | None = None


class WorkflowJob(Event):
    workflow_job: WorkflowJobItem


class Branch(Payload):
    name: str


class Status(Event):
    state: str
    sha: str
    context: str = ""
    description: str | None = None
    target_url: str | None = None
    branches: list[Branch] = Field(default_factory=list)


# Deployments.


class DeploymentItem(Payload):
    """The deployment a `deployment_status` event is about: what was deployed, and where."""

    ref: str | None = None
    sha: str | None = None
    environment: str | None = None


class DeploymentStatusItem(Payload):
    """The health check's answer: its state, and where its log and the deployed app are."""

    state: str
    description: str | None = None
    log_url: str | None = None
    target_url: str | None = None


class DeploymentStatus(Event):
    deployment_status: DeploymentStatusItem
    deployment: DeploymentItem


# Installations, ping.


class Repository(Payload):
    full_name: str


class InstallationItem(Payload):
    id: int
    account: Account | None = None


class Installation(Event):
    installation: InstallationItem
    repositories: list[Repository] | None = None


class InstallationRepositories(Event):
    installation: InstallationItem
    repositories_added: list[Repository] = Field(default_factory=list)
    repositories_removed: list[Repository] = Field(default_factory=list)


class Hook(Payload):
    id: int | None = None


class Ping(Event):
    zen: str | None = None
    hook: Hook | None = None
