"""The ledger of Shipmate's changes beyond their runs: CI jobs on `shipmate/` branches, and what
people do on Shipmate's pull requests (reviews, comments, merge or close). Records only; never
answers on GitHub. Each row is keyed by GitHub's own id, so a redelivery counts once."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from bot.runs.ours import is_ours
from bot.triggers.context import Context
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


def _human(user: Any) -> bool:
    user = user or {}
    login = str(user.get("login") or "")
    return user.get("type") != "Bot" and not login.endswith("[bot]") and bool(login)


async def _record_job(
    context: Context,
    source: str,
    item: dict[str, Any],
    *,
    branch: Any,
    app: Any,
    name: Any,
    times: tuple[str, str] = ("started_at", "completed_at"),
) -> None:
    """One CI job (or suite) of a Shipmate branch, keyed by its source and GitHub id."""
    if not str(branch or "").startswith(BRANCH_PREFIX) or not context.repository:
        return
    started, completed, seconds = _duration(item.get(times[0]), item.get(times[1]))
    await asyncio.to_thread(
        context.store.ledger.record_ci_job,
        f"{source}:{item.get('id')}",
        repo=context.repository,
        head_branch=branch,
        head_sha=item.get("head_sha"),
        name=name,
        app=app,
        conclusion=item.get("conclusion"),
        started_at=started,
        completed_at=completed,
        seconds=seconds,
    )


def _other_ci(context: Context, item: dict[str, Any]) -> str | None:
    """The slug of a CI app other than Actions (its jobs come as workflow_job) and Shipmate
    (its own check is no CI), or None."""
    app = (item.get("app") or {}).get("slug")
    return None if app in (ACTIONS, context.settings.app_slug or "shipmate") else app


@router.register("workflow_job", action="completed")
async def workflow_job(context: Context) -> None:
    job = context.payload.get("workflow_job") or {}
    await _record_job(
        context,
        "workflow_job",
        job,
        branch=job.get("head_branch"),
        app=ACTIONS,
        name=job.get("name"),
    )


@router.register("check_run", action="completed")
async def check_run(context: Context) -> None:
    run = context.payload.get("check_run") or {}
    app = _other_ci(context, run)
    if app is None:
        return
    branch = (run.get("check_suite") or {}).get("head_branch")
    await _record_job(context, "check_run", run, branch=branch, app=app, name=run.get("name"))


@router.register("check_suite", action="completed")
async def check_suite(context: Context) -> None:
    """A CI app that reports suites without check runs is timed by the suite."""
    suite = context.payload.get("check_suite") or {}
    app = _other_ci(context, suite)
    if app is None or suite.get("latest_check_runs_count"):
        return  # a suite's check runs are counted one by one
    await _record_job(
        context,
        "check_suite",
        suite,
        branch=suite.get("head_branch"),
        app=app,
        name=app,
        times=("created_at", "updated_at"),
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
    pull = context.payload.get("pull_request") or {}
    if not is_ours(context, pull):
        return
    await _activity(
        context,
        "opened",
        int(pull["number"]),
        "opened",
        actor=(pull.get("user") or {}).get("login"),
        branch=(pull.get("head") or {}).get("ref"),
        at=seconds_of(pull.get("created_at")) or 0.0,
    )


@router.register("pull_request", action="closed")
async def pull_closed(context: Context) -> None:
    pull = context.payload.get("pull_request") or {}
    if not is_ours(context, pull):
        return
    merged = bool(pull.get("merged"))
    at = seconds_of(pull.get("merged_at") if merged else pull.get("closed_at"))
    await _activity(
        context,
        "merged" if merged else "closed",
        int(pull["number"]),
        "merged" if merged else "closed",
        actor=(context.payload.get("sender") or {}).get("login"),
        at=at or 0.0,
    )


@router.register("pull_request_review", action="submitted")
async def review_submitted(context: Context) -> None:
    pull = context.payload.get("pull_request") or {}
    review = context.payload.get("review") or {}
    if not is_ours(context, pull) or not _human(review.get("user")):
        return
    await _activity(
        context,
        f"review:{review.get('id')}",
        int(pull["number"]),
        "review",
        actor=(review.get("user") or {}).get("login"),
        at=seconds_of(review.get("submitted_at")) or 0.0,
    )


async def _comment(context: Context, number: int, comment: dict[str, Any]) -> None:
    if not _human(comment.get("user")):
        return
    if not await asyncio.to_thread(
        context.store.ledger.is_shipmate_pull, context.repository or "", number
    ):
        return
    await _activity(
        context,
        f"comment:{comment.get('id')}",
        number,
        "comment",
        actor=(comment.get("user") or {}).get("login"),
        at=seconds_of(comment.get("created_at")) or 0.0,
    )


@router.register("pull_request_review_comment", action="created")
async def review_comment(context: Context) -> None:
    pull = context.payload.get("pull_request") or {}
    await _comment(context, int(pull.get("number") or 0), context.payload.get("comment") or {})


@router.register("issue_comment", action="created")
async def pull_comment(context: Context) -> None:
    issue = context.payload.get("issue") or {}
    if not issue.get("pull_request"):
        return
    await _comment(context, int(issue.get("number") or 0), context.payload.get("comment") or {})
