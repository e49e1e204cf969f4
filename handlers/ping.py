"""`ping`: GitHub checks the webhook when the App is created. Nothing to do but note it."""

from __future__ import annotations

from bot.triggers.context import Context
from bot.triggers.routing import Router

router = Router()


@router.register("ping")
async def ping(context: Context) -> None:
    hook = context.payload.get("hook") or {}
    context.log.info("ping", zen=context.payload.get("zen"), hook_id=hook.get("id"))
