"""The router: handlers register for an event (and optionally an action); routers compose.

Each module in handlers/ exports its own `router`; handlers/__init__.py joins them with
`Router(*routers)` (bedevere's shape).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from bot.triggers.context import Context

Handler = Callable[["Context"], Awaitable[None]]
H = TypeVar("H", bound=Handler)


class Router:
    def __init__(self, *routers: Router) -> None:
        self._handlers: dict[tuple[str, str | None], list[Handler]] = defaultdict(list)
        for router in routers:
            for key, handlers in router._handlers.items():
                self._handlers[key].extend(handlers)

    def register(self, event: str, action: str | None = None) -> Callable[[H], H]:
        """Decorator: call the function for `event` (and only `action`, when given)."""

        def decorate(handler: H) -> H:
            self._handlers[(event, action)].append(handler)
            return handler

        return decorate

    def handlers_for(self, event: str, action: str | None) -> list[Handler]:
        found = list(self._handlers.get((event, None), ()))
        if action is not None:
            found.extend(self._handlers.get((event, action), ()))
        return found

    def events(self) -> frozenset[str]:
        """Every event some handler is registered for."""
        return frozenset(event for event, _ in self._handlers)

    def handles(self, event: str, action: str | None) -> bool:
        return bool(self.handlers_for(event, action))

    async def dispatch(self, context: Context) -> int:
        """Call every matching handler once, in registration order; return how many ran."""
        handlers = self.handlers_for(context.event, context.action)
        for handler in handlers:
            await handler(context)
        return len(handlers)
