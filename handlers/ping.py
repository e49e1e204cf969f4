"""`ping`: GitHub checks the webhook when the App is created. Nothing to do but note it."""

from __future__ import annotations

from bot.triggers.context import Context
from bot.triggers.events import Ping
from bot.triggers.routing import Router

router = Router()


@router.register("ping")
async def ping(context: Context) -> None:
    event = Ping.model_validate(context.payload)
    context.log.info("ping", zen=event.zen, hook_id=event.hook.id if event.hook else None)
