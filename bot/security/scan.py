"""Pure security functions: secret scanning and masking, redaction of outbound text, and hygiene
for untrusted text (issue bodies, comments, logs) before the model or GitHub sees it.

Nothing here performs I/O. Values found are never logged or returned in messages: a `Finding`
carries the rule and the position, and the masked text says `[REDACTED:<rule>]`.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Rule:
    """One kind of secret. `group` is the part of the match that is the secret itself."""

    name: str
    pattern: re.Pattern[str]
    group: int = 0
    min_entropy: float = 0.0


def _rule(name: str, pattern: str, group: int = 0, min_entropy: float = 0.0) -> Rule:
    return Rule(name, re.compile(pattern), group, min_entropy)


_NAME = r"[A-Za-z0-9_.\-]*"
# A name that ends with one of these words marks a secret in an assignment (`DB_PASSWORD=`,
# `apiKey:`, `"client_secret":`); `AUTH_USER_MODEL` or `tokenizer_name` do not.
_CRED_END = (
    r"(?:SECRET|TOKEN|PASSWORD|PASSWD|PWD|PASSPHRASE|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY"
    r"|SECRET_?KEY|SIGNING_?KEY|ENCRYPTION_?KEY|MASTER_?KEY|AUTH|CREDENTIALS?)(?:_?\d+)?"
)
_PEM_KIND = r"(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?"
# A newline, or the two characters `\n` of a key kept in one line (an env var, a JSON string),
# then an optional `cat -n` line number.
_PEM_BREAK = r"(?:\r?\n|\\n)[ \t]*(?:\d+\t)?"

RULES: tuple[Rule, ...] = (
    # The key's body: header lines and base64 lines up to the END line, or to the last base64
    # line when only the start of the key is in view (`head key.pem`).
    _rule(
        "private-key",
        rf"-----BEGIN {_PEM_KIND}-----"
        rf"(?:{_PEM_BREAK}(?:[A-Za-z0-9+/=]+|[A-Za-z-]+:[^\n\\]*)?(?=\r?\n|\\n|$))*"
        rf"(?:{_PEM_BREAK}-----END {_PEM_KIND}-----)?",
    ),
    _rule("github-token", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}\b"),
    _rule("github-pat", r"\bgithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}\b"),
    _rule("aws-access-key-id", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    _rule(
        "aws-secret-access-key",
        r"(?i)(?:aws_?secret_?(?:access_?)?key|secret_?access_?key)[\"']?\s*[:=]\s*[\"']?"
        r"([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        group=1,
        min_entropy=3.5,
    ),
    _rule(
        "aws-session-token",
        r"(?i)(?:aws_?)?session_?token[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{64,})",
        group=1,
        min_entropy=3.5,
    ),
    _rule("anthropic-key", r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_\-]{80,120}"),
    _rule(
        "openai-key",
        r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,}"
        r"|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,}",
    ),
    _rule(
        "slack-token",
        r"\bxox[abprse]-[0-9A-Za-z]{10,48}(?:-[0-9A-Za-z]{10,64}){1,3}\b"
        r"|\bxapp-\d-[A-Z0-9]{8,}-\d{8,}-[A-Za-z0-9]{20,}\b",
    ),
    _rule(
        "slack-webhook",
        r"https://hooks\.slack\.com/services/T[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/[A-Za-z0-9]{20,32}",
    ),
    _rule("stripe-key", r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,99}\b"),
    _rule("stripe-webhook-secret", r"\bwhsec_[A-Za-z0-9+/=]{24,}"),
    _rule(
        "jwt",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,}",
    ),
    _rule(
        "url-password",
        r"\b[a-z][a-z0-9+.\-]*://[^\s/:@\"']+:([^\s/@\"']{6,})@[A-Za-z0-9.\-]+",
        group=1,
        min_entropy=2.5,
    ),
    _rule(
        "env-assignment",
        rf"(?im)^[ \t]*(?:export[ \t]+)?{_NAME}{_CRED_END}[ \t]*[:=][ \t]*"
        r"[\"']?([^\s\"'`]{12,})[\"']?[ \t]*(?:[ \t]#.*)?$",
        group=1,
        min_entropy=3.3,
    ),
    # `{"api_key": "…"}`, `{'password': '…'}`, `'token' => '…'`: a quoted key anywhere on a line.
    _rule(
        "keyed-secret",
        rf"(?i)[\"']{_NAME}{_CRED_END}[\"'][ \t]*(?:=>|[:=,])[ \t]*[\"']([^\s\"'`]{{10,}})[\"']",
        group=1,
        min_entropy=3.3,
    ),
)

_PLACEHOLDER_VALUE = re.compile(
    r"^(?:\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|<[^>]*>|\{\{.*\}\}|%\(.+\)s|(.)\1+|"
    r"(?i:changeme|change_me|example|placeholder|your[_-].*|xxx+|dummy|test|secret|password|"
    r"redacted|\[redacted.*|none|null|true|false).*)$"
)
# Standard or URL-safe alphabet.
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/=_\-])[A-Za-z0-9+/_\-]{32,}={0,2}(?![A-Za-z0-9+/=_\-])")
# "ghp_" "abc" or "ghp_" + "abc": a secret split into string literals to dodge scanners.
_SPLIT_JOIN = re.compile(r"([\"'])\s*(?:\+|\.|,)?\s*\1")


@dataclass(frozen=True)
class Finding:
    """A secret at `text[start:end]` (1-based `line`). The value itself is never kept."""

    rule: str
    start: int
    end: int
    line: int
    encoding: str = "plain"


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    if not value:
        return 0.0
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_EMAIL = re.compile(r"^[^@\s]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$")
_WORD_SEPARATORS = re.compile(r"[._:,/\-]+")
_WORD = re.compile(r"[a-z]+\d*|(?:[A-Z][a-z]+)+\d*|[A-Z]+\d*|\d+|[a-z]+(?:[A-Z][a-z]+)+")


def _is_words(value: str) -> bool:
    """Every part between separators is a word, a Capitalised or camelCase word, or a number."""
    parts = [part for part in _WORD_SEPARATORS.split(value) if part]
    return bool(parts) and all(_WORD.fullmatch(part) for part in parts)


def _looks_random(value: str, min_entropy: float) -> bool:
    if min_entropy <= 0:
        return True
    if _PLACEHOLDER_VALUE.match(value):
        return False
    # Function calls, references, paths, URLs, e-mail addresses and names made of words
    # (`accounts.CustomUser`, `bert-base-uncased-v2`) are code or configuration, not secrets.
    if any(c in value for c in "()[]{}") or value.startswith(("/", "./")):
        return False
    if _URL.match(value) or _EMAIL.match(value) or _is_words(value):
        return False
    classes = sum(
        bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]")
    )
    return classes >= 2 and entropy(value) >= min_entropy


def _scan_plain(text: str) -> list[tuple[str, int, int]]:
    spans: list[tuple[str, int, int]] = []
    for rule in RULES:
        for match in rule.pattern.finditer(text):
            value = match.group(rule.group)
            if value is None or not _looks_random(value, rule.min_entropy):
                continue
            spans.append((rule.name, match.start(rule.group), match.end(rule.group)))
    return spans


def _line_at(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def scan(text: str) -> list[Finding]:
    """Every secret in `text`, plain, base64-encoded or split into string literals."""
    found = [
        Finding(rule, start, end, _line_at(text, start)) for rule, start, end in _scan_plain(text)
    ]
    for match in _BASE64_RUN.finditer(text):
        decoded = _b64decode(match.group(0))
        if decoded is not None and _scan_plain(decoded):
            rule = _scan_plain(decoded)[0][0]
            found.append(
                Finding(rule, match.start(), match.end(), _line_at(text, match.start()), "base64")
            )
    found.extend(_scan_split(text))
    return _merge(found)


def _b64decode(chunk: str) -> str | None:
    try:
        standard = chunk.replace("-", "+").replace("_", "/")
        raw = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded if decoded.isprintable() or "\n" in decoded else None


def _scan_split(text: str) -> list[Finding]:
    found: list[Finding] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        if _SPLIT_JOIN.search(line):
            joined = _SPLIT_JOIN.sub("", line)
            if _scan_plain(joined) and not _scan_plain(line):
                rule = _scan_plain(joined)[0][0]
                end = offset + len(line.rstrip("\n"))
                found.append(Finding(rule, offset, end, _line_at(text, offset), "split"))
        offset += len(line)
    return found


def _merge(found: list[Finding]) -> list[Finding]:
    """Drop findings contained in an earlier, wider one; keep the order of the text."""
    result: list[Finding] = []
    for finding in sorted(found, key=lambda f: (f.start, -f.end)):
        if result and finding.start < result[-1].end:
            if finding.end > result[-1].end:
                last = result[-1]
                result[-1] = Finding(last.rule, last.start, finding.end, last.line, last.encoding)
            continue
        result.append(finding)
    return result


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


@dataclass(frozen=True)
class DiffFinding:
    """A secret on an added line of a unified diff."""

    path: str
    line: int
    rule: str


_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def scan_diff(diff: str) -> list[DiffFinding]:
    """Secrets on the added lines of a unified diff (`git diff` output), with file and new line."""
    findings: list[DiffFinding] = []
    path = ""
    new_line = 0
    added: list[tuple[str, int, str]] = []
    for raw in diff.splitlines():
        if raw.startswith("+++ "):
            target = raw[4:].strip()
            path = target[2:] if target.startswith("b/") else target
            continue
        hunk = _HUNK.match(raw)
        if hunk:
            new_line = int(hunk.group(1))
            continue
        if raw.startswith("+") and not raw.startswith("+++"):
            added.append((path, new_line, raw[1:]))
            new_line += 1
        elif raw.startswith(" "):
            new_line += 1
    # Scan file by file so multi-line secrets (key blocks) are seen whole.
    by_path: dict[str, list[tuple[int, str]]] = {}
    for file, number, content in added:
        by_path.setdefault(file, []).append((number, content))
    for file, lines in by_path.items():
        text = "\n".join(content for _, content in lines)
        for finding in scan(text):
            findings.append(DiffFinding(file, lines[finding.line - 1][0], finding.rule))
    return findings


@dataclass(frozen=True)
class FileFinding:
    """A secret in a file of a checkout (`line` is 1-based). The value itself is not kept."""

    path: str
    line: int
    rule: str


@dataclass(frozen=True)
class TreeScan:
    """A checkout scan: where secrets are (safe to log) and their values (to redact, never log)."""

    findings: tuple[FileFinding, ...] = ()
    values: frozenset[str] = frozenset()


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


def scan_files(files: Iterable[tuple[str, str]]) -> TreeScan:
    """Scan `(path, text)` pairs; return the findings and the secret values they hold."""
    findings: list[FileFinding] = []
    values: set[str] = set()
    for path, text in files:
        found = scan(text)
        findings.extend(FileFinding(path, f.line, f.rule) for f in found)
        values |= secret_values(text, found)
    return TreeScan(tuple(findings), frozenset(values))


# Untrusted text ---------------------------------------------------------------------------------

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
        host = (urlsplit(lowered).hostname or "").lower()
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
