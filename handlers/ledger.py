"""The ledger of Shipmate's changes beyond their runs: CI jobs on `shipmate/` branches, and what
people do on Shipmate's pull requests (reviews, comments, merge or close). Records only; never
answers on GitHub. Each row is keyed by GitHub's own id, so a redelivery counts once."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from bot.runs.ours import is_ours
from bot.triggers.context import Context
from bot.triggers.events import (
    Account,
    App,
    CheckRun,
    CheckSuite,
    CiItem,
    Comment,
    IssueComment,
    Pull,
    PullRequest,
    PullRequestReview,
    PullRequestReviewComment,
    WorkflowJob,
)
from bot.triggers.routing import Router

router = Router()
BRANCH_PREFIX = "shipmate/"
ACTIONS = "github-actions"


def seconds_of(stamp: Any) -> float | None:
    """GitHub's ISO 8601 time as UNIX seconds, or None."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _duration(start: Any, end: Any) -> tuple[float | None, float | None, float]:
    started, completed = seconds_of(start), seconds_of(end)
    if started is None or completed is None:
        return started, completed, 0.0
    return started, completed, max(0.0, completed - started)


def _human(user: Account | None) -> bool:
    login = user.login if user else ""
    return bool(login) and user is not None and user.type != "Bot" and not login.endswith("[bot]")


def _ours(context: Context, pull: Pull) -> bool:
    return is_ours(context, pull.model_dump())


async def _record_job(
    context: Context,
    source: str,
    item: CiItem,
    *,
    branch: str | None,
    app: str | None,
    name: str | None,
    times: tuple[str | None, str | None],
) -> None:
    """One CI job (or suite) of a Shipmate branch, keyed by its source and GitHub id."""
    if not (branch or "").startswith(BRANCH_PREFIX) or not context.repository:
        return
    started, completed, seconds = _duration(*times)
    await asyncio.to_thread(
        context.store.ledger.record_ci_job,
        f"{source}:{item.id}",
        repo=context.repository,
        head_branch=branch,
        head_sha=item.head_sha,
        name=name,
        app=app,
        conclusion=item.conclusion,
        started_at=started,
        completed_at=completed,
        seconds=seconds,
    )


def _other_ci(context: Context, app: App | None) -> str | None:
    """The slug of a CI app other than Actions (its jobs come as workflow_job) and Shipmate
    (its own check is no CI), or None."""
    slug = app.slug if app else None
    return None if slug in (ACTIONS, context.settings.app_slug or "shipmate") else slug


@router.register("workflow_job", action="completed")
async def workflow_job(context: Context) -> None:
    job = WorkflowJob.model_validate(context.payload).workflow_job
    times = (job.started_at, job.completed_at)
    await _record_job(
        context,
        "workflow_job",
        job,
        branch=job.head_branch,
        app=ACTIONS,
        name=job.name,
        times=times,
    )


@router.register("check_run", action="completed")
async def check_run(context: Context) -> None:
    run = CheckRun.model_validate(context.payload).check_run
    app = _other_ci(context, run.app)
    if app is None:
        return
    branch, times = run.check_suite.head_branch, (run.started_at, run.completed_at)
    await _record_job(context, "check_run", run, branch=branch, app=app, name=run.name, times=times)


@router.register("check_suite", action="completed")
async def check_suite(context: Context) -> None:
    """A CI app that reports suites without check runs is timed by the suite."""
    suite = CheckSuite.model_validate(context.payload).check_suite
    app = _other_ci(context, suite.app)
    if app is None or suite.latest_check_runs_count:
        return  # a suite's check runs are counted one by one
    times = (suite.created_at, suite.updated_at)
    await _record_job(
        context, "check_suite", suite, branch=suite.head_branch, app=app, name=app, times=times
    )


async def _activity(context: Context, key: str, number: int, kind: str, **values: Any) -> None:
    if context.repository is None:
        return
    await asyncio.to_thread(
        context.store.ledger.record_activity,
        f"{context.repository}#{number}:{key}",
        repo=context.repository,
        number=number,
        kind=kind,
        **values,
    )


@router.register("pull_request", action="opened")
async def pull_opened(context: Context) -> None:
    pull = PullRequest.model_validate(context.payload).pull_request
    if not _ours(context, pull):
        return
    await _activity(
        context,
        "opened",
        pull.number,
        "opened",
        actor=pull.user.login if pull.user else None,
        branch=pull.head.ref,
        at=seconds_of(pull.created_at) or 0.0,
    )


@router.register("pull_request", action="closed")
async def pull_closed(context: Context) -> None:
    event = PullRequest.model_validate(context.payload)
    pull = event.pull_request
    if not _ours(context, pull):
        return
    kind = "merged" if pull.merged else "closed"
    at = seconds_of(pull.merged_at if pull.merged else pull.closed_at)
    actor = event.sender.login if event.sender else None
    await _activity(context, kind, pull.number, kind, actor=actor, at=at or 0.0)


@router.register("pull_request_review", action="submitted")
async def review_submitted(context: Context) -> None:
    event = PullRequestReview.model_validate(context.payload)
    pull, review = event.pull_request, event.review
    if not _ours(context, pull) or not _human(review.user):
        return
    await _activity(
        context,
        f"review:{review.id}",
        pull.number,
        "review",
        actor=review.user.login if review.user else None,
        at=seconds_of(review.submitted_at) or 0.0,
    )


async def _comment(context: Context, number: int, comment: Comment) -> None:
    if not _human(comment.user):
        return
    if not await asyncio.to_thread(
        context.store.ledger.is_shipmate_pull, context.repository or "", number
    ):
        return
    await _activity(
        context,
        f"comment:{comment.id}",
        number,
        "comment",
        actor=comment.user.login if comment.user else None,
        at=seconds_of(comment.created_at) or 0.0,
    )


@router.register("pull_request_review_comment", action="created")
async def review_comment(context: Context) -> None:
    event = PullRequestReviewComment.model_validate(context.payload)
    await _comment(context, event.pull_request.number, event.comment)


@router.register("issue_comment", action="created")
async def pull_comment(context: Context) -> None:
    event = IssueComment.model_validate(context.payload)
    if event.issue.pull_request is None:
        return
    await _comment(context, event.issue.number, event.comment)
