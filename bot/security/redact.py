"""Outbound text: secrets replaced (`mask`, `redact`), mentions that ping nobody and links only to
allowed hosts (`outbound`, which everything Shipmate posts on GitHub passes; `Outbound`, the one a
GitHub client applies, with the secrets known so far). Pure."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

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
# (`_@alice_` is an italic mention).
_MENTION = re.compile(r"(?<![A-Za-z0-9`/@])@([A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[\w.-]+)?)")


def neutralize_mentions(text: str) -> str:
    """`@name` -> `@<zero-width space>name`, so posting the text pings nobody."""
    return _MENTION.sub(lambda m: "@\u200b" + m.group(1), text)


_CODE = re.compile(r"```[\s\S]*?(?:```|$)|~~~[\s\S]*?(?:~~~|$)|`[^`\n]+`")
_HTML_LINK = re.compile(
    r"<a\b[^>]*?\bhref\s*=\s*[\"']?([^\"'\s>]+)[\"']?[^>]*>([\s\S]*?)</a\s*>", re.IGNORECASE
)
_HTML_SRC = re.compile(
    r"<(?:img|source|video|iframe)\b[^>]*?\bsrc\s*=\s*[\"']?([^\"'\s>]+)[\"']?[^>]*>", re.IGNORECASE
)
_MD_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\((<[^>\n]*>|\S+?)(?:\s+\"[^\"]*\")?\)")
_AUTOLINK = re.compile(r"<((?:https?://|www\.)[^\s<>]+)>", re.IGNORECASE)
_BARE_URL = re.compile(r"(?<![\w`/.@-])(?:https?://|www\.)[^\s<>`\"')\]]+", re.IGNORECASE)
_URL_TAIL = ".,;:!?*_~"


def _outside_code(text: str, change: Callable[[str], str]) -> str:
    """`change` applied to the text outside code spans and fenced blocks (where links and
    mentions are not rendered, and where an added backtick would end the span)."""
    parts: list[str] = []
    last = 0
    for code in _CODE.finditer(text):
        parts.append(change(text[last : code.start()]))
        parts.append(code.group(0))
        last = code.end()
    parts.append(change(text[last:]))
    return "".join(parts)


def defang_links(text: str, allowed_hosts: Sequence[str]) -> str:
    """Links to hosts not in `allowed_hosts` are shown as code, not made clickable: markdown
    and HTML links, autolinks, bare URLs and `www.` names."""

    def external(url: str) -> bool:
        lowered = url.lower()
        if lowered.startswith("www."):
            lowered = "http://" + lowered
        if not lowered.startswith(("http://", "https://", "//")):
            return False
        try:
            host = (urlsplit(lowered).hostname or "").lower()
        except ValueError:  # "http://[x": no host it could name is allowed
            return True
        return not any(host == h or host.endswith("." + h) for h in allowed_hosts)

    def html(match: re.Match[str]) -> str:
        url, label = match.groups()
        return f"{label} (`{url}`)" if external(url) else match.group(0)

    def src(match: re.Match[str]) -> str:
        return f"`{match.group(1)}`" if external(match.group(1)) else match.group(0)

    def md(match: re.Match[str]) -> str:
        _image, label, url = match.groups()
        url = url.strip("<>")
        return f"{label} (`{url}`)" if external(url) else match.group(0)

    def auto(match: re.Match[str]) -> str:
        return f"`{match.group(1)}`" if external(match.group(1)) else match.group(0)

    def bare(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(_URL_TAIL)
        tail = match.group(0)[len(url) :]
        return f"`{url}`{tail}" if external(url) else match.group(0)

    def prose(part: str) -> str:
        part = _HTML_LINK.sub(html, part)
        part = _HTML_SRC.sub(src, part)
        part = _MD_LINK.sub(md, part)
        part = _AUTOLINK.sub(auto, part)
        return _BARE_URL.sub(bare, part)

    return _outside_code(text, prose)


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
