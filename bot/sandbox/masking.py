"""The forms a secret value travels in, and a stream masker over them. Pure.

A host that receives a real secret may send it back: as is, URL-encoded, hex, base64 (inside a
longer base64 text, at any of the three byte alignments), JSON-escaped or reversed. The proxy
replaces each such form in a response by the same form of the placeholder, so the real value never
reaches the sandbox; and it refuses a request that carries any form of a value found in the
checkout. A host that transforms a value arbitrarily (encrypts it, splits it with other text,
re-wraps base64 over lines) is beyond this: see docs/security-egress.md.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import quote, quote_plus

# Below this length an encoded form is too likely to occur by chance in ordinary traffic (and
# replacing it would corrupt a download); the raw value is still masked at any length.
MIN_ENCODED = 8


def base64_cores(raw: bytes) -> list[bytes]:
    """The base64 characters that depend on `raw` alone, for each of the three byte alignments
    `raw` can take inside a longer text (standard alphabet). Character i of an encoding covers
    bits [6i, 6i+6); with `pad` bytes before it the value covers bits [8*pad, 8*(pad+len))."""
    cores = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw)
        start = -(-8 * pad // 6)
        end = 8 * (pad + len(raw)) // 6
        cores.append(encoded[start:end])
    return cores


def _url_forms(value: str) -> list[str]:
    """Always six entries (some may repeat), so a value's forms pair up with a placeholder's."""
    forms = [quote(value, safe=""), quote_plus(value), quote(value, safe="/")]
    # Percent escapes in lower case are as valid, and some hosts write them so.
    lowered = []
    for form in forms:
        head, *escapes = form.split("%")
        lowered.append(head + "".join("%" + e[:2].lower() + e[2:] for e in escapes))
    return forms + lowered


def _transforms() -> list[Callable[[bytes], list[bytes]]]:
    def text(function: Callable[[str], Iterable[str]]) -> Callable[[bytes], list[bytes]]:
        return lambda raw: [f.encode() for f in function(raw.decode("utf-8", "replace"))]

    return [
        lambda raw: [raw.hex().encode(), raw.hex().upper().encode()],
        lambda raw: base64_cores(raw),
        lambda raw: [c.replace(b"+", b"-").replace(b"/", b"_") for c in base64_cores(raw)],
        text(_url_forms),
        text(lambda value: [json.dumps(value)[1:-1], json.dumps(value)[1:-1].replace("/", "\\/")]),
        lambda raw: [raw[::-1]],
    ]


def encoded_forms(value: str, *, min_length: int = MIN_ENCODED) -> set[bytes]:
    """`value` as is, plus its encoded forms when it is at least `min_length` bytes long. Forms
    shorter than `min_length` (a short value's base64 core) are left out."""
    raw = value.encode()
    if not raw:
        return set()
    forms = {raw}
    if len(raw) >= min_length:
        for transform in _transforms():
            forms.update(f for f in transform(raw) if len(f) >= min_length)
    return forms


def replacements(pairs: Mapping[str, str]) -> dict[bytes, bytes]:
    """real value -> placeholder into every form of the value -> the same form of the
    placeholder (for base64 cores, the core at the same alignment)."""
    table: dict[bytes, bytes] = {}
    for value, placeholder in pairs.items():
        raw, stand_in = value.encode(), placeholder.encode()
        if not raw:
            continue
        table[raw] = stand_in
        if len(raw) < MIN_ENCODED:
            continue
        for transform in _transforms():
            for form, replacement in zip(transform(raw), transform(stand_in), strict=True):
                if len(form) >= MIN_ENCODED and form not in table:
                    table[form] = replacement
    return table


class StreamMasker:
    """Replaces every form in `table` over a stream of chunks, a form split across chunks
    included: it holds back the last (longest form - 1) bytes until more arrive or `flush`."""

    def __init__(self, table: Mapping[bytes, bytes]) -> None:
        # Longest first: a longer form is never half-replaced by a shorter one inside it.
        self.forms = sorted(table.items(), key=lambda item: -len(item[0]))
        self.keep = max((len(form) for form in table), default=1) - 1
        self.buffer = b""

    def mask(self, data: bytes) -> bytes:
        for form, replacement in self.forms:
            data = data.replace(form, replacement)
        return data

    def feed(self, chunk: bytes) -> bytes:
        data = self.buffer + chunk
        if self.keep <= 0 or len(data) <= self.keep:
            self.buffer = b"" if self.keep <= 0 else data
            return self.mask(data) if self.keep <= 0 else b""
        data = self.mask(data)
        self.buffer = data[-self.keep :]
        return data[: -self.keep]

    def flush(self) -> bytes:
        data, self.buffer = self.mask(self.buffer), b""
        return data
