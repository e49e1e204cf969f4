"""Starting, stopping and reporting tasks on an issue or PR: what the command and label handlers
share. Decides and enqueues; the `run` job (bot/runs.py) does the work."""

from __future__ import annotations

import asyncio

from bot.commands import VERBS, help_text
from bot.context import Context
from bot.github import RepoClient
from bot.render import Progress, sticky_comment
from bot.runs import lock_key

WRITERS = ("admin", "maintain", "write")
REFUSAL = (
    "Sorry, only people with write access to this repository can ask Shipmate to work on it. "
    "A maintainer can comment `/shipmate fix` for you."
)


async def may_trigger(context: Context, repo: RepoClient, number: int) -> bool:
    """Write, maintain or admin (the collaborator permission API, not author_association);
    anyone else gets one polite refusal per thread."""
    if await repo.permission(context.sender) in WRITERS:
        return True
    assert context.repository is not None
    first = await asyncio.to_thread(
        context.store.first_refusal, context.repository, number, context.sender
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
    extra: dict[str, object] | None = None,
) -> None:
    assert context.repository is not None and context.installation_id is not None
    key = lock_key(context.repository, number)
    queue, store = context.queue, context.store
    if verb not in VERBS or verb == "help":
        prefix = f"I don't know `/shipmate {verb}`. " if verb not in VERBS else ""
        await repo.comment(number, prefix + help_text(context.settings.app_slug))
        return
    if verb == "stop":
        stopped = await asyncio.to_thread(queue.request_abort, lock_key=key)
        await repo.comment(number, "Stopping the task." if stopped else "Nothing is running here.")
        return
    if verb == "status":
        runs = await asyncio.to_thread(store.runs_for, context.repository, number)
        if await asyncio.to_thread(queue.running, key):
            text = "A task is running here."
        elif not runs:
            text = "No task has run here yet."
        else:
            last = runs[-1]
            text = (
                f"The last task (`{last['kind']}`) ended `{last['status']}`; "
                f"it cost ${last['cost_usd']:.2f}."
            )
        await repo.comment(number, text)
        return
    runs = await asyncio.to_thread(store.runs_for, context.repository, number)
    if verb == "retry":
        verb = str(runs[-1]["kind"]) if runs else "fix"
    if verb == "apply":
        plans = [r for r in runs if r["kind"] == "plan" and r.get("plan")]
        if not plans:
            await repo.comment(
                number, "There is no plan here to apply yet: comment `/shipmate plan` first."
            )
            return
        notes = f"follow this plan: {plans[-1]['plan']}"
        verb = "fix"
    await enqueue_run(context, repo, number, verb, {"notes": notes, **(extra or {})})


async def enqueue_run(
    context: Context, repo: RepoClient, number: int, verb: str, extra: dict[str, object]
) -> bool:
    """Queue a `run` job for this issue or PR (one at a time), with its sticky comment."""
    assert context.repository is not None and context.installation_id is not None
    key = lock_key(context.repository, number)
    queue = context.queue
    if await asyncio.to_thread(queue.running, key):
        await repo.comment(
            number, "I'm already working on this. Comment `/shipmate stop` to cancel it."
        )
        return False
    sticky_key = key.replace("/", "-").replace("#", "-")
    sticky = await repo.comment(
        number, sticky_comment(Progress(key=sticky_key, verb=verb, stage="queued"))
    )
    payload = {
        "repo": context.repository,
        "number": number,
        "verb": verb,
        "installation_id": context.installation_id,
        "delivery_id": context.delivery_id,
        "actor": context.sender,
        "sticky_comment_id": sticky,
        **extra,
    }
    job = await asyncio.to_thread(queue.enqueue, "run", payload, lock_key=key, queueing_lock=key)
    if job is None:
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
