"""Placeholder secrets, pure: the sandbox only ever holds a random stand-in for each secret; the
egress proxy swaps it for the real value in requests to that secret's host, blocks it anywhere
else, and swaps real values back in responses so they never reach the sandbox either."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

# A guarded value shorter than this is too likely to occur by chance in ordinary traffic.
MIN_GUARDED = 8


@dataclass(frozen=True)
class Secret:
    name: str
    value: str
    host: str
    placeholder: str


def make_placeholder(name: str) -> str:
    return f"SHIPMATE_PLACEHOLDER_{name.upper()}_{secrets.token_hex(12)}"


def build(secrets_by_name: Mapping[str, tuple[str, str]]) -> dict[str, Secret]:
    """NAME -> (real value, host) into NAME -> Secret with a fresh placeholder."""
    return {
        name: Secret(name, value, host.lower(), make_placeholder(name))
        for name, (value, host) in secrets_by_name.items()
    }


def misdirected(data: bytes, host: str, table: Mapping[str, Secret]) -> list[str]:
    """Names of secrets whose placeholder appears in `data` bound for the wrong host."""
    return [
        s.name for s in table.values() if s.placeholder.encode() in data and s.host != host.lower()
    ]


def substitute(data: bytes, host: str, table: Mapping[str, Secret]) -> bytes:
    """Placeholders of `host`'s secrets replaced by their real values."""
    for s in table.values():
        if s.host == host.lower():
            data = data.replace(s.placeholder.encode(), s.value.encode())
    return data


def mask_values(data: bytes, table: Mapping[str, Secret]) -> bytes:
    """Real values (e.g. echoed back by an upstream) replaced by their placeholders."""
    for s in table.values():
        if s.value:
            data = data.replace(s.value.encode(), s.placeholder.encode())
    return data


class StreamMasker:
    """`mask_values` over a stream: holds back just enough bytes to catch a value split across
    two chunks."""

    def __init__(self, table: Mapping[str, Secret]) -> None:
        self.table = table
        self.keep = max((len(s.value.encode()) for s in table.values()), default=1) - 1
        self.buffer = b""

    def feed(self, chunk: bytes) -> bytes:
        data = mask_values(self.buffer + chunk, self.table)
        if self.keep <= 0:
            self.buffer = b""
            return data
        self.buffer = data[-self.keep :]
        return data[: -self.keep]

    def flush(self) -> bytes:
        data, self.buffer = mask_values(self.buffer, self.table), b""
        return data


def guarded_forms(values: Iterable[str]) -> tuple[bytes, ...]:
    """The byte forms a request may carry a secret value in: as is, URL-encoded, hex, and
    base64 at each of the three alignments it can take inside a longer base64 text."""
    forms: set[bytes] = set()
    for value in values:
        raw = value.encode()
        if len(raw) < MIN_GUARDED:
            continue
        forms.update({raw, quote(value, safe="").encode(), quote_plus(value).encode()})
        forms.update({raw.hex().encode(), raw.hex().upper().encode()})
        for pad in range(3):
            encoded = base64.b64encode(b"\0" * pad + raw)
            # Drop the characters that depend on the bytes around the value.
            start = (pad * 4 + 2) // 3
            end = len(encoded) - (4 if (pad + len(raw)) % 3 else 0)
            if end - start >= MIN_GUARDED:
                forms.add(encoded[start:end])
    return tuple(sorted(forms))


def carries(data: bytes, forms: Iterable[bytes]) -> bool:
    """Whether `data` holds any of the guarded `forms`."""
    return any(form in data for form in forms)
