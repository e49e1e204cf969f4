"""structlog set-up: JSON when not on a terminal, console otherwise. Called from `main` only."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterable
from typing import Literal

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


def configure(
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    *,
    known: Iterable[str] = (),
) -> None:
    """Configure structlog and the stdlib root logger once, at start-up. Every string of every
    line is masked by the secret scanner and for the `known` secret values."""
    known = tuple(known)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(name)s: %(message)s")
    redacting = RedactingFilter(known)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redacting)
