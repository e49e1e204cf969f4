"""What an execution writes to the store as it goes: each model call with its usage and cost,
and each request the egress proxy saw, with the command that made it as a person would read it
(never what the request carried)."""

from __future__ import annotations

import re
from typing import Any

import structlog

from bot.agent.ledger import cost_usd
from bot.agent.model import Reply
from bot.sandbox.bwrap import BwrapSandbox
from bot.security.redact import mask

HEADER_OR_DATA = re.compile(
    r"""(-H|--header|-d|--data(?:-\w+)?|-F|--form|-u|--user|--cookie|-b)[=\s]+('[^']*'|"[^"]*"|\S+)"""
)
URL_QUERY = re.compile(r"\?[^\s'\"]*")


def shown_command(argv: tuple[str, ...] | None, limit: int = 200) -> str | None:
    """A command as a person would read it: a shell's script rather than `bash -lc`."""
    if not argv:
        return None
    text = argv[-1] if argv[:1] == ("bash",) and len(argv) >= 3 else " ".join(argv)
    text = mask(" ".join(text.split()))
    # What a request would carry stays out: header and data arguments, URL queries.
    text = HEADER_OR_DATA.sub(lambda m: f"{m.group(1)} …", text)
    text = URL_QUERY.sub("?…", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Records:
    """The run's records in `store` (none without one). The delivery that started the run is
    the one bound to the log's context when the execution begins."""

    def __init__(self, store: Any | None, run_id: str, model_name: str) -> None:
        self.store, self.run_id, self.model_name = store, run_id, model_name
        self.bound = structlog.contextvars.get_contextvars()
        # The sandbox once it runs: the command it is running made the request.
        self.sandbox: BwrapSandbox | None = None

    def model_call(self, seq: int, reply: Reply) -> None:
        if self.store is None:
            return
        usage = reply.usage
        self.store.record_model_call(
            self.run_id,
            seq,
            self.model_name,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_creation_input_tokens=usage.cache_creation_input_tokens,
            cache_read_input_tokens=usage.cache_read_input_tokens,
            cost_usd=cost_usd(usage, self.model_name),
            duration_ms=reply.duration_ms,
        )

    def egress(self, event: Any) -> None:
        running = self.sandbox.running if self.sandbox is not None else None
        if self.store is None:
            return
        self.store.append_egress(
            task_id=event.task_id,
            host=event.host,
            port=event.port,
            method=event.method,
            bytes_out=event.bytes_out,
            bytes_in=event.bytes_in,
            allowed=event.allowed,
            reason=event.reason,
            at=event.at.timestamp(),
            delivery_id=self.bound.get("delivery_id"),
            command=shown_command(running),
        )
