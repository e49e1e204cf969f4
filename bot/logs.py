"""structlog set-up: JSON when not on a terminal, console otherwise. Called from `main` only.

structlog keeps a line's message under `event`, which is also the natural name of the GitHub
event a line is about. So the message is written as `msg`, and a GitHub event bound as
`github_event` is written as `event`. The stdlib's loggers (uvicorn's, httpx's) go through the
same processors, so in JSON mode every line is one JSON object, and every string of every line
is masked by the secret scanner and for the secret values the process knows.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Literal, TextIO

import structlog
from structlog.typing import Processor

from bot.config import Settings
from bot.security.log_redaction import RedactSecrets, drop_secrets

MESSAGE_KEY = "msg"
GITHUB_EVENT_KEY = "github_event"


def settings_secrets(settings: Settings) -> list[str]:
    """The secret values the process holds (`held_secrets`: the same the GitHub client's
    outbound redaction knows)."""
    from bot.sandbox.operator_secrets import held_secrets

    return held_secrets(settings)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stdlib handler `configure` installs (replaced, not added again, on a second call)."""


def configure(
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    *,
    known: Iterable[str] = (),
    stream: TextIO | None = None,
    cache: bool = True,
) -> None:
    """Configure structlog and the stdlib root logger once, at start-up."""
    out = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty(), event_key=MESSAGE_KEY)
    )
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    tail: list[Processor] = [
        structlog.processors.format_exc_info,
        drop_secrets,
        RedactSecrets(known),
        structlog.processors.EventRenamer(MESSAGE_KEY, replace_by=GITHUB_EVENT_KEY),
        renderer,
    ]
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=cache,
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    handler = _Handler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root.addHandler(handler)
    root.setLevel(numeric)
