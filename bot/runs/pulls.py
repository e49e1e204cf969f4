"""What a run that changed the code publishes: a new branch and pull request, or a follow-up
commit on the pull request's own branch (answering the review comments it addressed), each
commit made by GitHub from the reviewed tree and reported by the `Shipmate` check run. Shipmate
never merges, never force-pushes and never pushes to the default branch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import structlog

from bot.config import slugify
from bot.github.git_data import GitDatabase
from bot.runs.api_commit import BranchMoved, NotPublished, commit_through_api
from bot.runs.checks import report_check
from bot.runs.context import PUBLISH, Ending
from bot.runs.costs import ledger_lines
from bot.runs.execution import shown
from bot.runs.publish import commit_message
from bot.runs.render import Progress, pr_body
from bot.runs.report import change_so_far, rates_of
from bot.runs.request import PullTarget

log = structlog.get_logger("shipmate.runs")


async def publish_change(ending: Ending) -> tuple[Progress, str | None]:
    """A follow-up commit on the PR's branch, or a new branch and pull request; when GitHub
    would not take the commit as reviewed, or the branch moved, nothing is pushed and the
    sticky comment says so."""
    run, common = ending.run, ending.common
    task = run.request.task
    try:
        if task.pr is not None:
            return await push_follow_up(ending, task.pr), task.pr.head_ref
        return await open_pull(ending)
    except NotPublished as exc:
        log.warning("run.not_published", run_id=run.run_id, reason=str(exc))
        if isinstance(exc, BranchMoved) and task.pr is not None:
            return moved(task.pr.head_ref, common), None
        reason = f"The commit was not made: {exc}. Nothing was pushed."
        return Progress(stage="failed", reason=reason, **common), None


def moved(head_ref: str, common: dict[str, Any]) -> Progress:
    return Progress(
        stage="stopped",
        reason=f"`{head_ref}` moved while I worked (someone pushed), so I pushed nothing. "
        "Comment `/shipmate retry` to start again from the new head.",
        **common,
    )


async def push(ending: Ending, branch: str, title: str, *, new_branch: bool) -> str:
    """The reviewed tree becomes a commit GitHub makes (and signs) through its Git database
    API, with a client minted for this moment only; `branch` moves to it only from the run's
    base commit (a fast-forward), or is created."""
    run, done = ending.run, ending.done
    if done.change is None or done.change.base_sha != ending.base_sha:
        raise RuntimeError("a completed run with a patch always holds its reviewed change")
    publisher = await run.client(PUBLISH)
    commit = await commit_through_api(
        GitDatabase(publisher),
        done.change,
        commit_message(title, done.summary),
        branch=branch,
        new_branch=new_branch,
    )
    await run.audit("git.push", branch, sha=commit.sha, verified=commit.verified, via="api")
    return commit.sha


async def open_pull(ending: Ending) -> tuple[Progress, str]:
    run, done = ending.run, ending.done
    number, task = run.number, run.request.task
    issue_title = str(ending.issue.get("title") or f"issue {number}")
    title = (task.title or f"Fix #{number}: {issue_title}")[:250]
    branch = f"shipmate/{number}-{slugify(task.title or issue_title, 30)}"
    branch += f"-{run.branch_tag or run.run_id[:6]}"
    head_sha = await push(ending, branch, title, new_branch=True)
    result = shown("done", done, ending.common)
    # A follow-up of a pull request refers to it; an issue is closed by the pull request.
    follow_up = bool(task.title)
    body = pr_body(
        result,
        issue_number=None if follow_up else number,
        lead=f"Follow-up to #{number}." if follow_up else None,
    )
    publisher = await run.client(PUBLISH)
    pull = await publisher.create_pull(
        head=branch,
        base=ending.default_branch,
        title=title,
        body=body,
        draft=done.tests_passed is False,
    )
    await run.audit("pull_request.create", f"{run.repo_name}#{pull.number}")
    ledger = await asyncio.to_thread(ledger_text, ending, pull.number, branch)
    await report_check(run, publisher, result, head_sha, ledger)
    return shown("done", done, ending.common, pr_url=pull.html_url), branch


async def push_follow_up(ending: Ending, pr: PullTarget) -> Progress:
    """A follow-up commit on the PR's own branch, only if nobody pushed since the run began;
    each review comment it answers gets a reply in its thread."""
    run, head_ref = ending.run, pr.head_ref
    if await run.talker.branch_sha(head_ref) != ending.base_sha:
        return moved(head_ref, ending.common)
    title = run.request.task.instruction or "Follow-up"
    head_sha = await push(ending, head_ref, title, new_branch=False)
    result = shown("done", ending.done, ending.common)
    if pr.number != run.number:  # asked on the issue: name the pull request it changed
        pull = await run.talker.pull(pr.number)
        result = replace(result, pr_url=pull.html_url if pull else None)
    publisher = await run.client(PUBLISH)
    ledger = await asyncio.to_thread(ledger_text, ending, pr.number, head_ref)
    await report_check(run, publisher, result, head_sha, ledger)
    await reply_in_threads(ending, pr.number, pr.reply_to, head_sha)
    return result


def short_summary(text: str, limit: int = 600) -> str:
    first = text.strip().split("\n\n", 1)[0].strip()
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


async def reply_in_threads(
    ending: Ending, number: int, comment_ids: Iterable[int], head_sha: str
) -> None:
    run = ending.run
    summary = short_summary(ending.done.summary) or "I changed the code to address this."
    body = f"Addressed in {head_sha[:7]}: {summary}"
    for comment_id in comment_ids:
        await run.talker.reply_to_review_comment(number, int(comment_id), body)
        await run.audit("review.reply", f"{run.repo_name}#{number}", comment=int(comment_id))


def ledger_text(ending: Ending, number: int, branch: str) -> str:
    """What the change cost so far, this run included, for the check run."""
    run, done = ending.run, ending.done
    current = {
        "id": run.run_id,
        "cost_usd": done.cost_usd,
        "sandbox_wall_seconds": done.sandbox_wall_seconds,
        "sandbox_cpu_seconds": done.sandbox_cpu_seconds,
        **done.usage.as_dict(),
    }
    ledger = change_so_far(run.deps.store, run.repo_name, number, branch, current)
    lines = ledger_lines(ledger, rates_of(run.deps.settings))
    return "## What this change cost so far\n\n" + "\n".join(lines)
