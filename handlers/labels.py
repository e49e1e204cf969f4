"""The fix label (`shipmate:fix`, configurable): added starts `fix`, removed stops the task
(silently when nothing runs)."""

from __future__ import annotations

from bot.runs.tasks import handle, may_trigger, stop
from bot.triggers.context import Context
from bot.triggers.events import IssueLabel
from bot.triggers.routing import Router

router = Router()


async def _ours(context: Context, event: IssueLabel) -> bool:
    return event.label is not None and event.label.name == (await context.config()).label


@router.register("issues", action="labeled")
async def labeled(context: Context) -> None:
    event = IssueLabel.model_validate(context.payload)
    if context.sender_is_bot or not await _ours(context, event):
        return
    number = event.issue.number
    repo = await context.repo()
    if await may_trigger(context, repo, number):
        await handle(context, repo, number, "fix")


@router.register("issues", action="unlabeled")
async def unlabeled(context: Context) -> None:
    event = IssueLabel.model_validate(context.payload)
    if context.sender_is_bot or not await _ours(context, event):
        return
    number = event.issue.number
    repo = await context.repo()
    if await may_trigger(context, repo, number):
        await stop(context, repo, number, quiet=True)
