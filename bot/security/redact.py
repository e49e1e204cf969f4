"""Outbound text: secrets replaced (`mask`, `redact`), mentions that ping nobody and links only to
allowed hosts (`outbound`, which everything Shipmate posts on GitHub passes; `Outbound`, the one a
GitHub client applies, with the secrets known so far; links are judged in `bot.security.links`).
Pure."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bot.security.links import defang_links
from bot.security.scan import Finding, scan


def mask(text: str) -> str:
    """`text` with every secret replaced by `[REDACTED:<rule>]`."""
    findings = scan(text)
    if not findings:
        return text
    parts: list[str] = []
    last = 0
    for finding in findings:
        parts.append(text[last : finding.start])
        parts.append(f"[REDACTED:{finding.rule}]")
        last = finding.end
    parts.append(text[last:])
    return "".join(parts)


def redact(text: str, known: Iterable[str] = ()) -> str:
    """Outbound text: known secret values (and their base64 forms) first, then scanner hits."""
    for value in sorted({v for v in known if len(v) >= 6}, key=len, reverse=True):
        text = text.replace(value, "[REDACTED]")
        encoded = base64.b64encode(value.encode()).decode().rstrip("=")
        if len(encoded) >= 8:
            text = text.replace(encoded, "[REDACTED]")
    return mask(text)


MIN_KNOWN_LINE = 16


def long_lines(value: str) -> set[str]:
    """The lines of `value`, stripped, that are long enough to redact on their own (a line of a
    key block printed alone)."""
    return {line.strip() for line in value.splitlines() if len(line.strip()) >= MIN_KNOWN_LINE}


def secret_values(text: str, findings: Iterable[Finding]) -> set[str]:
    """The exact secret strings behind `findings`; a multi-line secret (a key block) also gives
    each of its long lines, so a command that prints one line of it is still redacted."""
    values: set[str] = set()
    for finding in findings:
        value = text[finding.start : finding.end]
        values.add(value)
        if "\n" in value:
            values |= long_lines(value)
    return values


# Not after a letter or digit (an e-mail), `/` (a URL) or `@`; after `_` or `*` it still pings
# (`_@alice_` is an italic mention). The `@` may be written as an entity (`&#64;`, `&#x40;`,
# `&commat;`), which GitHub decodes before it looks for mentions.
_MENTION = re.compile(
    r"(?<![A-Za-z0-9`/@])(?:@|&#0*64(?:;|(?![0-9]))|&#[xX]0*40(?:;|(?![0-9A-Fa-f]))|&commat;)"
    r"([A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[\w.-]+)?)"
)


def neutralize_mentions(text: str) -> str:
    """`@name` -> `@<zero-width space>name`, so posting the text pings nobody."""
    return _MENTION.sub(lambda m: "@\u200b" + m.group(1), text)


def outbound(text: str, *, known: Iterable[str] = (), allowed_hosts: Sequence[str] = ()) -> str:
    """Everything Shipmate posts on GitHub passes here: redaction, mentions, links."""
    return defang_links(neutralize_mentions(redact(text, known)), allowed_hosts)


GITHUB_HOSTS = ("github.com",)


@dataclass
class Outbound:
    """`outbound` with what one sender knows: the secret values to redact (the operator's, and a
    run's tokens and granted secrets, added as the run learns them) and the hosts links may point
    to. Applying it again to its own output changes nothing."""

    known: list[str] = field(default_factory=list)
    link_hosts: tuple[str, ...] = GITHUB_HOSTS

    def add(self, *values: str | None) -> None:
        self.known.extend(v for v in values if v)

    def __call__(self, text: str) -> str:
        return outbound(text, known=self.known, allowed_hosts=self.link_hosts)
