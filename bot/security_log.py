"""A structlog processor that keeps credentials out of log lines."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

_SENSITIVE = ("token", "secret", "password", "private_key", "authorization", "api_key")


def drop_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of any key that names a credential with `[REDACTED]`."""
    for key in list(event_dict):
        if any(word in key.lower() for word in _SENSITIVE):
            event_dict[key] = "[REDACTED]"
    return event_dict
