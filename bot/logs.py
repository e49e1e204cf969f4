"""structlog set-up: JSON when not on a terminal, console otherwise. Called from `main` only."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterable
from typing import Literal, TextIO

import structlog

from bot.config import ConfigError, Settings
from bot.security_log import RedactingFilter, RedactSecrets, drop_secrets


def settings_secrets(settings: Settings) -> list[str]:
    """The secret values the process holds: webhook secrets, the App key, the model API key."""
    values = list(settings.secrets)
    if settings.private_key is not None:
        values.append(settings.private_key.get_secret_value())
    if settings.private_key is not None or settings.private_key_path is not None:
        with contextlib.suppress(ConfigError):
            values.append(settings.private_key_pem())
    api_key = os.environ.get("ANTHROPIC_API_KEY")
    if api_key:
        values.append(api_key)
    return values


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
    """Configure structlog and the stdlib root logger once, at start-up. Every string of every
    line is masked by the secret scanner and for the `known` secret values."""
    known = tuple(known)
    out = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            drop_secrets,
            RedactSecrets(known),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=cache,
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    handler = _Handler(out)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(known))
    root.addHandler(handler)
    root.setLevel(numeric)
