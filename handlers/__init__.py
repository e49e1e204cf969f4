"""One module per trigger, each exporting its `router`; `router` here joins them all."""

from __future__ import annotations

from bot.routing import Router
from handlers import commands, installations, labels, ping

router = Router(ping.router, installations.router, commands.router, labels.router)

__all__ = ["router"]
