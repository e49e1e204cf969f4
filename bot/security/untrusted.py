"""Untrusted text (issue bodies, comments, logs) before the model sees it: hidden content
stripped, invisible characters shown, secrets masked, and data delimiters it cannot forge. Pure."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from bot.security.redact import mask, redact

_HTML_COMMENT = re.compile(r"<!--[\s\S]*?(?:-->|$)")
# Characters a reader does not see: format controls (zero-width, bidi, Unicode tags U+E0000-E007F,
# which can spell out a whole hidden instruction), line/paragraph separators, the combining
# grapheme joiner, variation selectors and the Hangul fillers.
_INVISIBLE_EXTRA = frozenset(
    {
        *(0x034F, 0x115F, 0x1160, 0x2028, 0x2029, 0x3164, 0xFFA0),
        *range(0x180B, 0x1810),
        *range(0xFE00, 0xFE10),
        *range(0xE0000, 0xE0080),
        *range(0xE0100, 0xE01F0),
    }
)
# `[x]: # (...)`, `[x]: <> (...)`, `[//]: # "..."`: link definitions nobody links to, which
# GitHub does not render, used as hidden comments.
_HIDDEN_MD = re.compile(r"(?m)^[ \t]*\[[^\]\n]*\]:[ \t]*(?:#|<>)(?:[ \t].*)?$")
_HIDDEN_HTML = re.compile(
    r"<(?P<tag>[a-z]+)\b[^>]*(?:hidden|display\s*:\s*none)[^>]*>[\s\S]*?</(?P=tag)\s*>",
    re.IGNORECASE,
)


def sanitize_untrusted(text: str) -> str:
    """Strip what a human reviewer cannot see but a model would read: HTML comments, hidden HTML
    and markdown comments; make invisible and bidi control characters visible."""
    text = _HTML_COMMENT.sub("", text)
    text = _HIDDEN_HTML.sub("", text)
    text = _HIDDEN_MD.sub("", text)
    return "".join(f"<U+{ord(c):04X}>" if _is_invisible(c) else c for c in text)


def _is_invisible(char: str) -> bool:
    return ord(char) in _INVISIBLE_EXTRA or unicodedata.category(char) in ("Cf", "Co")


_DATA_TAG = re.compile(r"<(\s*/?\s*untrusted-data)", re.IGNORECASE)


def defuse_data_tags(text: str) -> str:
    """`</untrusted-data>` in any case or spacing becomes `&lt;/untrusted-data>`."""
    return _DATA_TAG.sub(r"&lt;\1", text)


def untrusted_block(label: str, text: str, known: Iterable[str] = ()) -> str:
    """Untrusted text as a delimited data block the brief tells the model never to obey.

    Hidden content is stripped, secrets are masked (by rule and `known` value), and the
    delimiter cannot be forged from inside: any occurrence in the text is defused.
    """
    tag = re.sub(r"[^a-z0-9_-]", "-", label.lower()) or "data"
    body = defuse_data_tags(redact(sanitize_untrusted(text), known))
    return f'<untrusted-data source="{tag}">\n{body}\n</untrusted-data>'


def untrusted_line(text: str, limit: int = 300) -> str:
    """Untrusted text that must sit in a trusted sentence (an issue title, a check name): one
    line, nothing hidden, secrets masked, no data delimiters, at most `limit` characters."""
    clean = defuse_data_tags(mask(sanitize_untrusted(text)))
    clean = " ".join(clean.split())
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"
