"""One module per trigger, each exporting its `router`; `router` here joins them all."""

from __future__ import annotations

from bot.triggers.routing import Router
from handlers import (
    check_actions,
    checks,
    commands,
    deployments,
    installations,
    labels,
    ledger,
    ping,
    reviews,
)

router = Router(
    ping.router,
    installations.router,
    commands.router,
    labels.router,
    reviews.router,
    checks.router,
    check_actions.router,
    deployments.router,
    ledger.router,
)

__all__ = ["router"]
