"""What a run that changed the code publishes: a new branch and pull request, or a follow-up
commit on the pull request's own branch (answering the review comments it addressed), each
commit made by GitHub from the reviewed tree and reported by the `Shipmate` check run. Shipmate
never merges, never force-pushes and never pushes to the default branch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import structlog

from bot.config import slugify
from bot.github.client import RepoClient
from bot.github.git_data import GitDatabase
from bot.github.models import PullRequest
from bot.runs.api_commit import BranchMoved, NotPublished, make_commit, move_branch
from bot.runs.attempts import claim_branch, commits_made, run_marker
from bot.runs.checks import report_check
from bot.runs.context import PUBLISH, Ending, Run
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


@dataclass(frozen=True)
class Head:
    """Where a branch stands: its head commit (None: no such branch), and that commit's tree
    when an earlier attempt of this job made it (None: not ours, or no earlier attempt)."""

    sha: str | None
    tree: str | None = None


async def branch_head(run: Run, client: RepoClient, branch: str) -> Head:
    """Where `branch` stands; a commit counts as this job's only when one of its attempts
    recorded making it (before it moved the branch), never for what the branch says."""
    sha = await client.branch_sha(branch)
    if sha is None or not run.retried:
        return Head(sha)
    ids = (run.run_id, *run.earlier)
    made = await asyncio.to_thread(commits_made, run.deps.store, ids)
    return Head(sha, made.get(sha))


async def push(ending: Ending, branch: str, title: str, head: Head, *, new_branch: bool) -> str:
    """The reviewed tree becomes a commit GitHub makes (and signs) through its Git database
    API, with a client minted for this moment only; `branch` moves to it only from the run's
    base commit (a fast-forward), or is created. A retried job whose earlier attempt pushed
    (`head`) keeps that commit when it holds the same tree, else builds on it: one branch,
    never a force-push."""
    run, done = ending.run, ending.done
    change = done.change
    if change is None or change.base_sha != ending.base_sha:
        raise RuntimeError("a completed run with a patch always holds its reviewed change")
    if head.sha is not None and head.tree == change.tree:
        await run.audit("git.push", branch, sha=head.sha, again=True)
        return head.sha
    database = GitDatabase(await run.client(PUBLISH))
    ours = head.sha if head.tree is not None else None
    message = commit_message(title, done.summary)
    commit = await make_commit(database, change, message, parent=ours)
    # Before the branch moves: a retry after a kill here knows the commit for its own.
    await run.audit("git.commit", branch, sha=commit.sha, tree=commit.tree)
    await move_branch(database, branch, commit.sha, new_branch=new_branch and ours is None)
    await run.audit("git.push", branch, sha=commit.sha, verified=commit.verified, via="api")
    return commit.sha


async def open_pull(ending: Ending) -> tuple[Progress, str]:
    run, done = ending.run, ending.done
    number, task = run.number, run.request.task
    issue_title = str(ending.issue.get("title") or f"issue {number}")
    title = (task.title or f"Fix #{number}: {issue_title}")[:250]
    branch = f"shipmate/{number}-{slugify(task.title or issue_title, 30)}-{run.job_key[:6]}"
    publisher = await run.client(PUBLISH)
    head = await branch_head(run, publisher, branch)
    head_sha = await push(ending, branch, title, head, new_branch=True)
    result = shown("done", done, ending.common)
    # A follow-up of a pull request refers to it; an issue is closed by the pull request.
    follow_up = bool(task.title)
    body = pr_body(
        result,
        issue_number=None if follow_up else number,
        lead=f"Follow-up to #{number}." if follow_up else None,
    )
    pull = await open_or_update(ending, publisher, branch, title, body)
    ledger = await asyncio.to_thread(ledger_text, ending, pull.number, branch)
    await report_check(run, publisher, result, head_sha, ledger)
    return shown("done", done, ending.common, pr_url=pull.html_url), branch


async def open_or_update(
    ending: Ending, publisher: RepoClient, branch: str, title: str, body: str
) -> PullRequest:
    """The pull request from `branch`: the one an earlier attempt of the job opened (open,
    from this repository, by Shipmate's bot) updated, else a new one."""
    run = ending.run
    if run.retried:
        for found in await publisher.open_pulls_headed(branch):
            head = found.get("head") or {}
            author = (found.get("user") or {}).get("login")
            mine = (head.get("repo") or {}).get("full_name") == run.repo_name
            if head.get("ref") == branch and author == run.author and mine:
                pull = await publisher.update_pull(int(found["number"]), title=title, body=body)
                await run.audit("pull_request.update", f"{run.repo_name}#{pull.number}")
                return pull
    pull = await publisher.create_pull(
        head=branch,
        base=ending.default_branch,
        title=title,
        body=body,
        draft=ending.done.tests_passed is False,
    )
    await run.audit("pull_request.create", f"{run.repo_name}#{pull.number}")
    return pull


async def push_follow_up(ending: Ending, pr: PullTarget) -> Progress:
    """A follow-up commit on the PR's own branch, only if nobody pushed since the run began
    (an earlier attempt of this job may have); each review comment it answers gets a reply in
    its thread."""
    run, head_ref = ending.run, pr.head_ref
    head = await branch_head(run, run.talker, head_ref)
    if head.sha != ending.base_sha and head.tree is None:
        return moved(head_ref, ending.common)
    title = run.request.task.instruction or "Follow-up"
    head_sha = await push(ending, head_ref, title, head, new_branch=False)
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
    """A reply in each review comment's thread, with the job's hidden mark: a retried job
    skips the threads where Shipmate's bot already replied with it."""
    run = ending.run
    summary = short_summary(ending.done.summary) or "I changed the code to address this."
    mark = run_marker(run.job_key)
    body = f"Addressed in {head_sha[:7]}: {summary}\n\n{mark}"
    answered: set[int | None] = set()
    if run.retried:
        answered = {
            c.in_reply_to_id
            for c in await run.talker.pull_review_comments(number)
            if c.user == run.author and mark in c.body.splitlines()
        }
    for comment_id in comment_ids:
        if int(comment_id) in answered:
            continue
        await run.talker.reply_to_review_comment(number, int(comment_id), body)
        await run.audit("review.reply", f"{run.repo_name}#{number}", comment=int(comment_id))


def ledger_text(ending: Ending, number: int, branch: str) -> str:
    """What the change cost so far, this run included, for the check run."""
    run, done = ending.run, ending.done
    claim_branch(run.deps.store, run.earlier, branch)
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
