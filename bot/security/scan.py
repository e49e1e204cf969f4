"""What a secret looks like: the rules, and `scan` of a text or of a diff's added lines.

Pure. Values found are never logged or returned in messages: a `Finding` carries the rule and the
position; `bot.security.redact` replaces them.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from dataclasses import dataclass


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


@dataclass(frozen=True)
class DiffFinding:
    """A secret on an added line of a unified diff."""

    path: str
    line: int
    rule: str


_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _added_lines(diff: str) -> list[tuple[str, int, str]]:
    """(file, new line number, text) of every added line. A hunk's header says how many lines
    it holds, and they are read as content whatever they start with: an added line `++ x`
    reads `+++ x` in the diff, and is no file header. Lines are split on newlines only."""
    added: list[tuple[str, int, str]] = []
    path, new_line, old_left, new_left = "", 0, 0, 0
    for raw in diff.split("\n"):
        if old_left > 0 or new_left > 0:
            if raw.startswith("+"):
                added.append((path, new_line, raw[1:]))
                new_line, new_left = new_line + 1, new_left - 1
            elif raw.startswith("-"):
                old_left -= 1
            elif not raw.startswith("\\"):  # "\ No newline at end of file"
                new_line, old_left, new_left = new_line + 1, old_left - 1, new_left - 1
            continue
        if raw.startswith("+++ "):
            target = raw[4:].strip()
            path = target[2:] if target.startswith("b/") else target
            continue
        hunk = _HUNK.match(raw)
        if hunk:
            old_left = int(hunk.group(1) or 1)
            new_line, new_left = int(hunk.group(2)), int(hunk.group(3) or 1)
    return added


def scan_diff(diff: str) -> list[DiffFinding]:
    """Secrets on the added lines of a unified diff (`git diff` output), with file and new line."""
    findings: list[DiffFinding] = []
    added = _added_lines(diff)
    # Scan file by file so multi-line secrets (key blocks) are seen whole.
    by_path: dict[str, list[tuple[int, str]]] = {}
    for file, number, content in added:
        by_path.setdefault(file, []).append((number, content))
    for file, lines in by_path.items():
        text = "\n".join(content for _, content in lines)
        for finding in scan(text):
            findings.append(DiffFinding(file, lines[finding.line - 1][0], finding.rule))
    return findings
