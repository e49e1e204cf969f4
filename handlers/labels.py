"""The fix label (`shipmate:fix`, configurable): added starts `fix`, removed stops the task
(silently when nothing runs)."""

from __future__ import annotations

from bot.runs.tasks import handle, may_trigger, stop
from bot.triggers.context import Context
from bot.triggers.routing import Router

router = Router()


async def _ours(context: Context) -> bool:
    label = (context.payload.get("label") or {}).get("name")
    return bool(label) and label == (await context.config()).label


@router.register("issues", action="labeled")
async def labeled(context: Context) -> None:
    if context.sender_is_bot or not await _ours(context):
        return
    number = int(context.payload["issue"]["number"])
    repo = await context.repo()
    if await may_trigger(context, repo, number):
        await handle(context, repo, number, "fix")


@router.register("issues", action="unlabeled")
async def unlabeled(context: Context) -> None:
    if context.sender_is_bot or not await _ours(context):
        return
    number = int(context.payload["issue"]["number"])
    repo = await context.repo()
    if await may_trigger(context, repo, number):
        await stop(context, repo, number, quiet=True)
