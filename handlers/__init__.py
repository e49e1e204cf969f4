"""One module per trigger, each exporting its `router`; `router` here joins them all."""

from __future__ import annotations

from bot.routing import Router
from handlers import installations, ping

router = Router(ping.router, installations.router)

__all__ = ["router"]
