"""Starting, stopping and reporting tasks on an issue or PR: what the command and label handlers
share. Decides and enqueues; the `run` job (bot/runs/job.py) does the work."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import structlog

from bot.config import RepoConfig, RepoConfigError
from bot.github.client import RepoClient
from bot.runs.budgets import monthly_caps, over_budget
from bot.runs.held import NEEDS_LARGE, NOTHING_HELD, last_held
from bot.runs.job import lock_key, sticky_key
from bot.runs.ours import open_pull_for_issue
from bot.runs.render import Progress, sticky_comment
from bot.runs.request import BadRunRequest, PullTarget, RunRequest, Task, run_verb
from bot.triggers.context import Context
from bot.triggers.verbs import VERBS, help_text

WRITERS = ("admin", "maintain", "write")
EVERYONE = "*"  # the refusal is recorded per thread, not per user
log = structlog.get_logger("shipmate.tasks")
REFUSAL = (
    "Sorry, only people with write access to this repository can ask Shipmate to work on it. "
    "A maintainer can comment `/shipmate fix` for you."
)


async def may_trigger(context: Context, repo: RepoClient, number: int) -> bool:
    """Write, maintain or admin (the collaborator permission API, not author_association);
    anyone else is refused, politely, once per thread whoever asks."""
    if await repo.permission(context.sender) in WRITERS:
        return True
    assert context.repository is not None
    first = await asyncio.to_thread(
        context.store.first_refusal,
        context.repository,
        number,
        EVERYONE,
        delivery_id=context.delivery_id,
    )
    if first:
        await repo.comment(number, REFUSAL)
    context.log.info("task.refused", sender=context.sender)
    return False


async def handle(
    context: Context,
    repo: RepoClient,
    number: int,
    verb: str,
    notes: str = "",
    task: Task | None = None,
    *,
    large: bool = False,
) -> None:
    """Answer `/shipmate <verb>` (or the label): help, stop and status at once; fix, plan,
    apply and retry queue a run of `task` (what the handler decided) with `notes`; `apply`
    after a change held back for its size needs `large` (`apply --large`) and publishes it."""
    assert context.repository is not None and context.installation_id is not None
    if await _answered_at_once(context, repo, number, verb):
        return
    runs = await asyncio.to_thread(context.store.runs_for, context.repository, number)
    if verb == "retry":
        if not runs:
            await repo.comment(number, "Nothing has run here yet: there is nothing to retry.")
            return
        verb = str(runs[-1]["kind"])
        last = await last_task(context, repo, str(runs[-1]["id"]))
        task = Task.from_fields({**last.fields(), **(task.fields() if task else {})})
        notes = task.notes
    elif verb == "apply":
        held = last_held(runs)
        if large or held is not None:
            await apply_held(context, repo, number, held, large=large)
            return
        plans = [r for r in runs if r["kind"] == "plan" and r.get("plan")]
        if not plans:
            await repo.comment(
                number, "There is no plan here to apply yet: comment `/shipmate plan` first."
            )
            return
        notes = f"follow this plan: {plans[-1]['plan']}"
        verb = "fix"
    task = replace(task or Task(), notes=notes)
    if verb == "fix" and task.pr is None and task.base_sha is None:  # a fix of an issue
        pull = await open_pull_for_issue(context, repo, number)
        if pull is not None:
            if not notes:
                await repo.comment(number, already_open(pull))
                return
            task = change_of(pull, number, notes, context.sender)
    await enqueue_run(context, repo, number, verb, task)


async def _answered_at_once(context: Context, repo: RepoClient, number: int, verb: str) -> bool:
    """help, stop, status and an unknown verb are answered here and now, without a run."""
    if verb not in VERBS or verb == "help":
        prefix = f"I don't know `/shipmate {verb}`. " if verb not in VERBS else ""
        await repo.comment(number, prefix + help_text(context.settings.app_slug))
    elif verb == "stop":
        await stop(context, repo, number, quiet=False)
    elif verb == "status":
        await repo.comment(number, await status_text(context, number))
    else:
        return False
    return True


def already_open(pull: Mapping[str, Any]) -> str:
    return (
        f"There is already a pull request for this: {pull['html_url']}. To change it, comment "
        "`/shipmate fix <what to change>` here, or review the pull request."
    )


def change_of(pull: Mapping[str, Any], number: int, notes: str, sender: str | None) -> Task:
    """A run that changes Shipmate's open pull request for issue `number` as asked, rather
    than opening a second one."""
    head = pull["head"]
    return Task(
        pr=PullTarget(number=int(pull["number"]), head_ref=head["ref"], head_sha=head["sha"]),
        instruction=f"Change pull request #{pull['number']}, which resolves issue #{number}, "
        "as asked below, with the smallest change.",
        notes=notes,
        feedback=notes,
        feedback_label=f"request by {sender}" if sender else "request",
    )


async def apply_held(
    context: Context,
    repo: RepoClient,
    number: int,
    held: dict[str, Any] | None,
    *,
    large: bool,
) -> None:
    """`/shipmate apply --large` publishes the change the last run held back for its size, as it
    was reviewed (a `run` job that does not run the agent); without `--large`, say it is needed."""
    if held is None or not large:
        await repo.comment(number, NOTHING_HELD if held is None else NEEDS_LARGE)
        return
    task = await last_task(context, repo, str(held["id"]))
    publish = replace(task, publish=str(held["id"]))
    await enqueue_run(context, repo, number, str(held["kind"]), publish)


async def stop(context: Context, repo: RepoClient, number: int, *, quiet: bool) -> None:
    """Cancel the task here (queued or running); `quiet` says nothing when there is none."""
    assert context.repository is not None
    key = lock_key(context.repository, number)
    stopped = await asyncio.to_thread(context.queue.request_abort, lock_key=key)
    if stopped:
        await repo.comment(number, "Stopping the task.")
    elif not quiet:
        await repo.comment(number, "Nothing is running here.")


async def status_text(context: Context, number: int) -> str:
    assert context.repository is not None
    store = context.store
    runs = await asyncio.to_thread(store.runs_for, context.repository, number)
    if await asyncio.to_thread(context.queue.running, lock_key(context.repository, number)):
        if not runs or runs[-1]["status"] != "running":
            return "A task is starting here."
        last = runs[-1]
        calls = await asyncio.to_thread(store.model_calls, str(last["id"]))
        cost = sum(float(c["cost_usd"]) for c in calls)
        return (
            f"A task (`{last['kind']}`) is running: {len(calls)} model "
            f"call{'s' if len(calls) != 1 else ''} so far, ${cost:.2f}."
        )
    if not runs:
        return "No task has run here yet."
    last = runs[-1]
    return (
        f"The last task (`{last['kind']}`) ended `{last['status']}`; "
        f"it cost ${last['cost_usd']:.2f}."
    )


async def last_task(context: Context, repo: RepoClient, run_id: str) -> Task:
    """What a run was asked to do (recorded when it started), with a pull request's head
    brought up to date so the retry starts from what is there now."""
    audit = await asyncio.to_thread(context.store.audit_for_run, run_id)
    start = next((a for a in audit if a["action"] == "run.start"), None)
    try:
        task = Task.from_fields(((start or {}).get("detail") or {}).get("task") or {})
    except BadRunRequest as exc:
        context.log.warning("task.unreadable", run_id=run_id, error=str(exc))
        return Task()
    if task.pr is not None:
        pull = await repo.pull(task.pr.number)
        if pull is not None:
            task = task.starting_at(pull.head_sha)
    return task


async def _over_budget(context: Context) -> str | None:
    assert context.repository is not None
    try:
        config = await context.config()
    except RepoConfigError:
        config = RepoConfig()  # the run itself reports the invalid file
    caps = monthly_caps(context.settings, config)
    return await asyncio.to_thread(
        over_budget, context.store, caps, context.repository, context.installation_id
    )


async def enqueue_run(
    context: Context,
    repo: RepoClient,
    number: int,
    verb: str,
    task: Task,
    *,
    quiet: bool = False,
) -> bool:
    """Queue a `run` job for this issue or PR (one at a time), with its sticky comment.

    `quiet` (feedback Shipmate acts on by itself) says nothing when a task is already queued or
    running, and leaves the sticky comment to the run, so a duplicate event leaves no trace."""
    assert context.repository is not None and context.installation_id is not None
    if any(row["action"] == "task.queued" for row in await context.earlier_actions()):
        return True  # an earlier attempt of this delivery's job queued it
    key = lock_key(context.repository, number)
    if not await _may_start(context, repo, number, key, quiet=quiet):
        return False
    sticky: int | None = None
    if not quiet:
        queued = Progress(key=sticky_key(context.repository, number), verb=verb, stage="queued")
        sticky = await repo.comment(number, sticky_comment(queued))
    request = RunRequest(
        repo=context.repository,
        number=number,
        verb=run_verb(verb),
        installation_id=context.installation_id,
        task=task,
        delivery_id=context.delivery_id,
        actor=context.sender or None,
        sticky_comment_id=sticky,
    )
    job = await asyncio.to_thread(
        context.queue.enqueue, "run", request.to_payload(), lock_key=key, queueing_lock=key
    )
    if job is None:
        if sticky is not None:
            await repo.edit_comment(sticky, "A task for this is already queued.")
        return False
    await asyncio.to_thread(
        context.store.append_audit,
        "task.queued",
        delivery_id=context.delivery_id,
        actor=context.sender,
        target=key,
        detail={"verb": verb},
    )
    return True


async def _may_start(
    context: Context, repo: RepoClient, number: int, key: str, *, quiet: bool
) -> bool:
    """No task is queued or running here (said unless `quiet`) and the budget allows one."""
    if await asyncio.to_thread(context.queue.running, key):
        if not quiet:
            await repo.comment(
                number, "I'm already working on this. Comment `/shipmate stop` to cancel it."
            )
        return False
    refused = await _over_budget(context)
    if refused:
        await repo.comment(
            number,
            f"I can't start this: {refused}. The budget starts again on the 1st of next month "
            "(UTC); an operator can raise it (SHIPMATE_REPO_MONTHLY_BUDGET_USD, "
            "SHIPMATE_INSTALLATION_MONTHLY_BUDGET_USD).",
        )
        return False
    return True
