"""Cut a CI log down to the part that explains the failure. Pure: text in, text out.

The excerpt keeps error lines, the failing test's assertion and traceback, and compiler errors
with a little context, drops set-up noise and passing tests, and says where it cut. The first
error also gives the failure's fingerprint, used to cap repair attempts per failure.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_TIMESTAMP = re.compile(r"^\ufeff?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ?")
_ACTIONS_MARKER = re.compile(r"^##\[(?:group|endgroup|section|command)\].*$")


@dataclass(frozen=True)
class Anchor:
    """A line pattern worth keeping, with how much context around it and how much it matters."""

    pattern: re.Pattern[str]
    before: int
    after: int
    priority: int


def _anchor(pattern: str, before: int = 0, after: int = 0, priority: int = 2) -> Anchor:
    return Anchor(re.compile(pattern), before, after, priority)


# Priority 3: the assertion or the error itself: always kept. 2: where and what failed. 1: summary.
ANCHORS: tuple[Anchor, ...] = (
    # Python: pytest and unittest
    _anchor(r"^E\s{2,}", before=0, after=0, priority=3),
    _anchor(r"^>\s{3,}\S", before=2, after=0, priority=2),
    _anchor(r"^\S[^:]*\.py:\d+: (?:in \S+|\w*(?:Error|Exception)\b)", priority=2),
    _anchor(r"^_{3,} .+ _{3,}$", priority=2),
    _anchor(r"^(?:FAILED|ERROR) \S+", priority=2),
    _anchor(r"^(?:FAIL|ERROR): \S+", before=1, after=1, priority=2),
    _anchor(r"^Traceback \(most recent call last\):", priority=2),
    _anchor(r'^\s+File "[^"]+", line \d+', after=1, priority=2),
    _anchor(r"^\w+(?:\.\w+)*(?:Error|Exception|Failure|Interrupt)\b(?::|$)", priority=3),
    _anchor(r"^=+ (?:\d+ failed|.*\bfailed\b.*) .*=+$", priority=1),
    _anchor(r"^FAILED \(.*(?:failures|errors)=\d+", priority=1),
    # JavaScript: jest / vitest / node
    _anchor(r"^\s*● ", after=1, priority=2),
    _anchor(r"^\s*(?:Expected|Received)(?: [a-z ]+)?:\s", priority=3),
    _anchor(r"^\s*expect\(", priority=3),
    _anchor(r"^\s*at .+\((?!.*node_modules)[^()]+:\d+:\d+\)$", priority=1),
    _anchor(r"^\s*>\s*\d+ \|", before=2, after=1, priority=3),
    _anchor(r"^Tests:\s+.*failed", priority=1),
    # Go
    _anchor(r"^\s*--- FAIL: ", after=0, priority=2),
    _anchor(r"^\s+\S+_test\.go:\d+: ", after=3, priority=3),
    _anchor(r"^panic: ", after=8, priority=3),
    _anchor(r"^FAIL\s+\S+", priority=1),
    # Rust: cargo build and test
    _anchor(r"^error(?:\[E\d+\])?: ", after=8, priority=3),
    _anchor(r"^thread '.*' panicked at", after=4, priority=3),
    _anchor(r"^---- \S+ stdout ----$", priority=2),
    _anchor(r"^test result: FAILED", priority=1),
    # Type checkers and compilers: mypy, tsc, gcc/clang, javac
    _anchor(r"^\S+\.pyi?:\d+(?::\d+)?: error: ", priority=3),
    _anchor(r"^\S+\.[cm]?[jt]sx?\(\d+,\d+\): error TS\d+: ", after=0, priority=3),
    _anchor(r"^\S+\.[cm]?[jt]sx?:\d+:\d+ - error TS\d+: ", after=4, priority=3),
    _anchor(
        r"^\S+\.(?:c|cc|cpp|cxx|h|hpp|m|java|kt|swift|cs):\d+(?::\d+)?: (?:fatal )?error",
        after=3,
        priority=3,
    ),
    _anchor(r"^Found \d+ errors? in \d+ files?", priority=1),
    # Generic
    _anchor(r"^##\[error\]", priority=2),
    _anchor(r"(?i)^(?:make|npm|yarn|pnpm)(?:\[\d+\])?: \*\*\*|^npm ERR! ", priority=1),
    _anchor(r"(?i)\bprocess completed with exit code [1-9]", priority=1),
)

_FIRST_ERROR_PRIORITY = 3
_LONG_RUN = 12


@dataclass(frozen=True)
class Excerpt:
    """The cut log, how many lines it kept of how many, and the first error line."""

    text: str
    kept_lines: int
    total_lines: int
    first_error: str


def normalize(log: str) -> list[str]:
    """Lines without colour codes, Actions timestamps or group markers."""
    lines = []
    for raw in log.splitlines():
        line = _TIMESTAMP.sub("", _ANSI.sub("", raw)).rstrip()
        if _ACTIONS_MARKER.match(line):
            continue
        lines.append(line)
    return lines


def excerpt(log: str, max_lines: int = 150) -> Excerpt:
    """The lines of `log` that explain the failure, in order, with `… N lines cut …` between."""
    lines = normalize(log)
    scores: dict[int, int] = {}
    first_error = ""
    previous: Anchor | None = None
    run = 0
    for index, line in enumerate(lines):
        matched = next((a for a in ANCHORS if a.pattern.search(line)), None)
        run = run + 1 if matched is not None and matched is previous else 1
        previous = matched
        if matched is None:
            continue
        if matched.priority >= _FIRST_ERROR_PRIORITY and not first_error:
            first_error = line.strip()
        # A long run of one kind (a 400-line assertion diff) matters at its head, not its tail.
        priority = matched.priority if run <= _LONG_RUN else 1
        low = max(0, index - matched.before)
        high = min(len(lines), index + matched.after + 1)
        for keep in range(low, high):
            weight = priority if keep == index else priority - 1
            if lines[keep].strip() and weight > scores.get(keep, 0):
                scores[keep] = weight
    if not scores:
        # Nothing recognisable: the tail is where runners say what went wrong.
        tail = [i for i in range(max(0, len(lines) - 40), len(lines)) if lines[i].strip()]
        scores = dict.fromkeys(tail, 1)
    kept = _within_budget(scores, max_lines)
    if not first_error and kept:
        first_error = lines[kept[-1]].strip()
    return Excerpt(_render(lines, kept), len(kept), len(lines), first_error)


def _within_budget(scores: dict[int, int], max_lines: int) -> list[int]:
    if len(scores) <= max_lines:
        return sorted(scores)
    # The highest priorities first; among equals, the earliest (the first failure explains most).
    ranked = sorted(scores, key=lambda i: (-scores[i], i))
    return sorted(ranked[:max_lines])


def _render(lines: list[str], kept: list[int]) -> str:
    out: list[str] = []
    previous = -1
    for index in kept:
        gap = index - previous - 1
        if gap > 0:
            out.append(f"… {gap} line{'s' if gap != 1 else ''} cut …")
        out.append(lines[index])
        previous = index
    rest = len(lines) - previous - 1
    if kept and rest > 0:
        out.append(f"… {rest} line{'s' if rest != 1 else ''} cut …")
    return "\n".join(out)


_VOLATILE = re.compile(
    r"0x[0-9a-f]+|\b[0-9a-f]{7,40}\b|\d+(?:\.\d+)?|'[^']*'|\"[^\"]*\"|\s+", re.IGNORECASE
)


def fingerprint(check_name: str, first_error: str) -> str:
    """Stable id of a failure: the check's name and its first error with volatile parts removed."""
    normalized = _VOLATILE.sub(" ", first_error.lower()).strip()
    digest = hashlib.sha256(f"{check_name.strip().lower()}\n{normalized}".encode()).hexdigest()
    return digest[:16]


def approx_tokens(text: str) -> int:
    """The usual estimate of model tokens: about four characters each."""
    return (len(text.encode()) + 3) // 4
