"""The ledger of Shipmate's changes beyond their runs: CI jobs on `shipmate/` branches, and what
people do on Shipmate's pull requests (reviews, comments, merge or close). Records only; never
answers on GitHub. Each row is keyed by GitHub's own id, so a redelivery counts once."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from bot.runs.repairs import is_ours
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


async def _record_job(context: Context, key: str, **values: Any) -> None:
    if not str(values.get("head_branch") or "").startswith(BRANCH_PREFIX) or not context.repository:
        return
    await asyncio.to_thread(
        context.store.ledger.record_ci_job, key, repo=context.repository, **values
    )


@router.register("workflow_job", action="completed")
async def workflow_job(context: Context) -> None:
    job = context.payload.get("workflow_job") or {}
    started, completed, seconds = _duration(job.get("started_at"), job.get("completed_at"))
    await _record_job(
        context,
        f"workflow_job:{job.get('id')}",
        head_branch=job.get("head_branch"),
        head_sha=job.get("head_sha"),
        name=job.get("name"),
        app=ACTIONS,
        conclusion=job.get("conclusion"),
        started_at=started,
        completed_at=completed,
        seconds=seconds,
    )


@router.register("check_run", action="completed")
async def check_run(context: Context) -> None:
    run = context.payload.get("check_run") or {}
    app = (run.get("app") or {}).get("slug")
    if app in (ACTIONS, context.settings.app_slug or "shipmate"):
        return  # Actions' jobs come as workflow_job; our own check is no CI
    started, completed, seconds = _duration(run.get("started_at"), run.get("completed_at"))
    await _record_job(
        context,
        f"check_run:{run.get('id')}",
        head_branch=(run.get("check_suite") or {}).get("head_branch"),
        head_sha=run.get("head_sha"),
        name=run.get("name"),
        app=app,
        conclusion=run.get("conclusion"),
        started_at=started,
        completed_at=completed,
        seconds=seconds,
    )


@router.register("check_suite", action="completed")
async def check_suite(context: Context) -> None:
    """A CI app that reports suites without check runs is timed by the suite."""
    suite = context.payload.get("check_suite") or {}
    app = (suite.get("app") or {}).get("slug")
    if app in (ACTIONS, context.settings.app_slug or "shipmate"):
        return
    if suite.get("latest_check_runs_count"):
        return  # its check runs are counted one by one
    started, completed, seconds = _duration(suite.get("created_at"), suite.get("updated_at"))
    await _record_job(
        context,
        f"check_suite:{suite.get('id')}",
        head_branch=suite.get("head_branch"),
        head_sha=suite.get("head_sha"),
        name=app,
        app=app,
        conclusion=suite.get("conclusion"),
        started_at=started,
        completed_at=completed,
        seconds=seconds,
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
