"""Feedback on Shipmate's own pull requests (a failing check, a review, a failed deploy) becomes a
repair run, within capped attempts per failure and per PR. A failure counts as an attempt only
when a run was queued for it; one head gets one repair, however many events report it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from bot.github.client import RepoClient
from bot.github.replies import written_by
from bot.runs.ours import is_ours
from bot.runs.request import PullTarget, Task
from bot.runs.tasks import enqueue_run
from bot.triggers.ci_log import excerpt, fingerprint
from bot.triggers.context import Context


async def shipmate_pull(context: Context, repo: RepoClient, number: int) -> dict[str, Any] | None:
    """The PR if Shipmate opened it and it is still open."""
    pull = await repo.pull_data(number)
    return pull if pull and is_ours(context, pull) and pull.get("state") == "open" else None


def capped_marker(mark: str) -> str:
    return f"<!-- shipmate:capped:{mark} -->"


async def within_caps(
    context: Context, repo: RepoClient, number: int, *, check: str, mark: str
) -> bool:
    """Whether another attempt at this failure is allowed; when not, say once (per failure,
    by the marker in our comment on GitHub) that a human is needed."""
    assert context.repository is not None
    config = await context.config()
    mine, total = await asyncio.to_thread(
        context.store.repair_attempts, context.repository, number, mark
    )
    if mine < config.max_attempts_per_failure and total < config.max_attempts_per_pr:
        return True
    context.log.info("repair.capped", check=check, attempts=mine, total=total)
    marker, author = capped_marker(mark), (await context.replies()).author
    if not any(marker in c.body and written_by(c, author) for c in await repo.comments(number)):
        # The check's name comes from the event: the client redacts it like any posted text.
        text = (
            f"I've tried to fix `{check}` as many times as this repository allows "
            f"({config.max_attempts_per_failure} per failure, {config.max_attempts_per_pr} per "
            "pull request). A human needs to take it from here."
        )
        await repo.comment(number, f"{marker}\n{text}")
    return False


async def already_done(context: Context, number: int, verb: str, base_sha: str) -> bool:
    """A run of `verb` from this commit was already recorded on this PR."""
    assert context.repository is not None
    runs = await asyncio.to_thread(context.store.runs_for, context.repository, number)
    return any(r["kind"] == verb and r["base_sha"] == base_sha for r in runs)


@dataclass(frozen=True)
class RepairPlan:
    """The run a failure asks for: its verb, the commit it starts from, the task, and the
    failure's fingerprint (what the attempt caps count by)."""

    verb: str
    base_sha: str
    task: Task
    mark: str


@dataclass(frozen=True)
class Failure:
    """A failure on a pull request to repair: the check that failed, its log, and what the log
    is called in the task's feedback. `note` (a status's description) is shown whole, above the
    log's excerpt; `passing` (the same job's log when it last passed) makes the lines only the
    failing log has count most; `follow_up` (a deploy of a merged PR) is the follow-up PR's
    task."""

    check: str
    log: str
    label: str
    note: str = ""
    follow_up: Task | None = None
    passing: str | None = None


def repair_plan(pull: Mapping[str, Any], failure: Failure) -> RepairPlan:
    """Pure: the log cut to its excerpt, `note` above it, as the task's feedback. Without
    `follow_up` the run pushes onto the PR's branch; with it (a deploy of a merged PR), the run
    opens the follow-up PR `follow_up` describes."""
    number = int(pull["number"])
    cut = excerpt(failure.log, passing=failure.passing)
    note, label = failure.note, failure.label
    feedback = f"{note}\n{cut.text}".strip() if note else cut.text
    mark = fingerprint(failure.check, cut.signature or note)
    head = pull["head"]
    if failure.follow_up is None:
        task = Task(
            pr=PullTarget(number=number, head_ref=head["ref"], head_sha=head["sha"]),
            instruction=f"The check `{failure.check}` fails on this pull request. Make the "
            "smallest change that makes it pass, without touching anything else.",
            feedback=feedback,
            feedback_label=label,
        )
        return RepairPlan("repair", str(head["sha"]), task, mark)
    task = replace(failure.follow_up, feedback=feedback, feedback_label=label)
    return RepairPlan("fix", str(failure.follow_up.base_sha), task, mark)


async def repair(
    context: Context, repo: RepoClient, pull: dict[str, Any], failure: Failure
) -> bool:
    """Start a repair run for `failure` of `pull` (see `repair_plan`), unless its attempts are
    used up or this commit is already being repaired."""
    assert context.repository is not None
    number, check = int(pull["number"]), failure.check
    plan = repair_plan(pull, failure)
    if not any(row["action"] == "task.queued" for row in await context.earlier_actions()):
        if not await within_caps(context, repo, number, check=check, mark=plan.mark):
            return False
        if await already_done(context, number, plan.verb, plan.base_sha):
            context.log.info("repair.duplicate", check=check, base_sha=plan.base_sha)
            return False
        if not await enqueue_run(context, repo, number, plan.verb, plan.task, quiet=True):
            context.log.info("repair.busy", check=check)
            return False
    # Else an earlier attempt of this delivery's job queued it, its caps checked then (now
    # they would count the attempt itself): it is counted once, whichever attempt gets here.
    await asyncio.to_thread(
        context.store.bump_repair_attempt,
        context.repository,
        number,
        plan.mark,
        delivery_id=context.delivery_id,
    )
    return True


def same_host(url: str | None, api_url: str) -> bool:
    if not url:
        return False
    return urlsplit(url).hostname == urlsplit(api_url).hostname
