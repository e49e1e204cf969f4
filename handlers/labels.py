"""The fix label (`shipmate:fix`, configurable): added starts `fix`, removed stops the task
(silently when nothing runs)."""

from __future__ import annotations

from bot.github.client import RepoClient
from bot.runs.tasks import handle, may_trigger, stop
from bot.triggers.context import Context
from bot.triggers.events import IssueLabel
from bot.triggers.routing import Router

router = Router()


async def _ours(context: Context, event: IssueLabel) -> bool:
    return event.label is not None and event.label.name == (await context.config()).label


async def _asked(context: Context) -> tuple[RepoClient, int] | None:
    """The repository and issue when a person who may trigger Shipmate added or removed the
    fix label."""
    event = IssueLabel.model_validate(context.payload)
    if context.sender_is_bot or not await _ours(context, event):
        return None
    repo = await context.repo()
    if not await may_trigger(context, repo, event.issue.number):
        return None
    return repo, event.issue.number


@router.register("issues", action="labeled")
async def labeled(context: Context) -> None:
    asked = await _asked(context)
    if asked is not None:
        await handle(context, *asked, "fix")


@router.register("issues", action="unlabeled")
async def unlabeled(context: Context) -> None:
    asked = await _asked(context)
    if asked is not None:
        await stop(context, *asked, quiet=True)
