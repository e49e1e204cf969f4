"""Keep credentials out of log lines: a structlog processor (stdlib lines reach it through
structlog's ProcessorFormatter).

It runs the secret scanner's masking plus the exact values the process knows are secret (the
App private key, the webhook secrets) over every string of every log line, so a token inside an
error message or a URL is redacted as well as a field named like a credential.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from bot.security.redact import long_lines, redact

_SENSITIVE = ("token", "secret", "password", "private_key", "authorization", "api_key")


def drop_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of any key that names a credential with `[REDACTED]`."""
    for key in list(event_dict):
        if any(word in key.lower() for word in _SENSITIVE):
            event_dict[key] = "[REDACTED]"
    return event_dict


def known_values(values: Iterable[str]) -> tuple[str, ...]:
    """The values to redact by exact match: each secret, and each long line of a multi-line one
    (a PEM key logged line by line, or inside a JSON string with escaped newlines)."""
    found: set[str] = set()
    for value in values:
        if not value:
            continue
        found.add(value)
        found |= long_lines(value)
    return tuple(sorted(found))


class RedactSecrets:
    """structlog processor: every string in the event (nested too) passes `redact`."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        self.known = known_values(known)

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            event_dict[key] = self.clean(value)
        return event_dict

    def clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, self.known)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {k: self.clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.clean(v) for v in value]
        # Anything else would be rendered with str()/repr(): redact that text instead.
        return redact(str(value), self.known)
