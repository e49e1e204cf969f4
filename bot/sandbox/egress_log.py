"""The egress proxy's record of every request a sandbox made, allowed or refused: an event per
request, logged and handed to the audit, with nothing in it that spells a value found in the
checkout (the sandbox chooses the host name and the method)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from bot.sandbox import placeholders

log = structlog.get_logger("shipmate.egress")


@dataclass(frozen=True)
class EgressEvent:
    at: datetime
    task_id: str
    host: str
    port: int
    method: str
    bytes_out: int
    bytes_in: int
    allowed: bool
    reason: str


class EgressLog:
    """One task's egress events, kept in `events` and given to `audit` as they happen."""

    def __init__(
        self,
        task_id: str,
        audit: Callable[[EgressEvent], None] | None,
        guarded: tuple[bytes, ...],
    ) -> None:
        self.task_id = task_id
        self.audit = audit
        # Host names reach the proxy in whatever case the sandbox wrote them.
        self._guarded_lower = tuple({form.lower() for form in guarded})
        self.events: list[EgressEvent] = []

    def record(
        self, host: str, port: int, method: str, out: int, into: int, allowed: bool, reason: str
    ) -> None:
        # The sandbox chooses the host name (and the method): one spelling a value found in
        # the checkout must not carry it into the logs or the audit table.
        host, method, reason = (self.scrub(text) for text in (host, method, reason))
        event = EgressEvent(
            datetime.now(UTC), self.task_id, host, port, method, out, into, allowed, reason
        )
        self.events.append(event)
        log.info("egress", host=host, port=port, method=method, allowed=allowed, reason=reason)
        if self.audit is not None:
            with contextlib.suppress(Exception):
                self.audit(event)

    def scrub(self, text: str) -> str:
        if placeholders.carries(text.encode("utf-8", "replace").lower(), self._guarded_lower):
            return "[a value found in the repository's files]"
        return text
