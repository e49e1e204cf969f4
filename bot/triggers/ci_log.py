"""Cut a CI log down to the part that explains the failure. Pure: text in, text out.

Works without knowing the runner. Structure first: the failing step is the one whose exit line
(`Process completed with exit code 1`, `The command "…" exited with 1.`, `Finished: FAILURE`, or
a tool's own) comes first; its last lines are always kept, because tools print their verdict
last. Then the lines that carry failure signals, weighted towards the end of that step, each with
a little context, until the token budget is spent. Noise (progress, downloads, `npm ERR!`
boilerplate, a frame repeated a hundred times) is dropped. With a passing run's log of the same
job, lines that occur only in the failing log count most. The first error also gives the
failure's fingerprint, used to cap repair attempts per failure.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass

from bot.triggers.ci_select import LONG_LINE, Selection, block, fill_gaps, grow, paragraph, render
from bot.triggers.ci_signals import (
    SCAN,
    clean,
    noise,
    runner_exit,
    shape,
    signal,
    step_start,
    wrapper_exit,
)
from bot.triggers.ci_steps import failing_step

BUDGET_TOKENS = 2000
_TAIL_SHARE = 0.4  # of the budget, for the failing step's last lines
_TAIL_LINES = 40
# A test's or a file's name (`tests/test_x.py::test_y`, `ext/x/tests/bug1.phpt`, `Foo#bar`).
_NAME = re.compile(r"(?<![\w/.-])[\w./-]*\w(?:\.[A-Za-z]{1,6}|::\w+|#\w+)(?:::\w+)*(?![\w/-])")
_SUMMARY_LINES = 60  # the step's last lines, where a summary names what failed
_FAILING = 2.5  # a line's own signal that says something failed
_NAMED_WEIGHT = 5.0  # what the first failure line naming a summarised name is worth
_ANCHOR = 0.75  # weight that makes a line worth keeping with its context
_COPIES = 2  # anchors saying the same thing taken in turn, before the rest of their copies
_PARAGRAPHS = 8  # anchors whose section is kept from its heading


@dataclass(frozen=True)
class Excerpt:
    """The cut log, which lines of `log.splitlines()` it kept, and the first error line."""

    text: str
    kept: tuple[int, ...]
    total_lines: int
    first_error: str
    signature: str = ""  # what identifies this failure among others: see `failure_signature`

    @property
    def kept_lines(self) -> int:
        return len(self.kept)


def approx_tokens(text: str) -> int:
    """The usual estimate of model tokens: about four characters each."""
    return (len(text.encode()) + 3) // 4


def normalize(log: str) -> list[str]:
    """The log's lines as a reader sees them, one for each of `log.splitlines()`."""
    return [clean(line) for line in log.splitlines()]


def _weights(lines: list[str], start: int, end: int, passing: str | None) -> list[float]:
    """Each line's claim to a place in the excerpt."""
    green = {shape(line) for line in normalize(passing)} if passing else None
    weights = []
    first_strong = False
    for index, line in enumerate(lines):
        weight = signal(line)
        if green is not None and line.strip():
            new = shape(line) not in green
            weight = weight + (2.0 if weight else 0.75) if new else weight * 0.25
        if start <= index <= end:
            weight *= 1 + (index - start) / (end - start + 1)
            if weight >= 2.5 and not first_strong:
                first_strong, weight = True, weight + 3  # the first error explains most
        else:
            weight *= 0.3 if index < start else 0.15
        weights.append(weight)
    _before_exits(lines, weights, start, end)
    _first_showing(lines, weights)
    _summarised(lines, weights, start, end)
    return weights


def _summarised(lines: list[str], weights: list[float], start: int, end: int) -> None:
    """A summary at the step's end names what failed (`FAILED tests/test_x.py::test_y`, a
    test's file in brackets): the failure line that first named it, above, holds the detail."""
    summary = [i for i in range(start, end + 1) if lines[i].strip()][-_SUMMARY_LINES:]
    if not summary or summary[0] <= start:
        return
    names = {name for i in summary for name in _NAME.findall(lines[i][:SCAN])}
    if not names:
        return
    named = re.compile("|".join(re.escape(name) for name in sorted(names, key=len, reverse=True)))
    found: set[str] = set()
    for index in range(start, summary[0]):
        if weights[index] < _ANCHOR or signal(lines[index]) < _FAILING:
            continue
        match = named.search(lines[index][:SCAN])
        if match and match.group() not in found:
            found.add(match.group())
            weights[index] = max(weights[index], _NAMED_WEIGHT)


def _first_showing(lines: list[str], weights: list[float]) -> None:
    """An error the log says again (a summary repeating it, a retried command failing the same
    way) is worth, where it first showed, as much as its weightiest copy: its context is there."""
    first: dict[str, int] = {}
    for index, weight in enumerate(weights):
        if weight >= _ANCHOR:
            key = shape(_TAG.sub("", lines[index]))
            at = first.setdefault(key, index)
            weights[at] = max(weights[at], weight)


def _before_exits(lines: list[str], weights: list[float], start: int, end: int) -> None:
    """The lines just above a line saying a command failed say why: boost them."""
    for index in range(start, end + 1):
        if index != end and not wrapper_exit(lines[index]):
            continue
        boost, above = 3.0, index - 1
        while boost > 0.5 and above >= start:
            line = lines[above]
            says = _WORDS.search(_TAG.sub("", line))  # not a rule, bare or `[INFO] ----`
            if says and not noise(line) and not wrapper_exit(line):
                weights[above] += boost
                boost -= 0.75
            above -= 1


def _distinct_first(lines: list[str], anchors: list[int]) -> list[int]:
    """The anchors, those that repeat one already met twice (the same exception thrown again,
    the same error from another test) after all the others: a third copy says little new."""
    seen: Counter[str] = Counter()
    first: list[int] = []
    again: list[int] = []
    for anchor in anchors:
        key = shape(lines[anchor])
        (again if seen[key] >= _COPIES else first).append(anchor)
        seen[key] += 1
    return first + again


def _tail(lines: list[str], start: int, end: int) -> list[int]:
    """The failing step's last lines, newest first, within the tail's share of the budget."""
    taken: list[int] = []
    spent = 0
    for index in range(end, start - 1, -1):
        if not lines[index].strip() or noise(lines[index]):
            continue
        spent += approx_tokens(lines[index][:LONG_LINE]) + 1
        if spent > BUDGET_TOKENS * _TAIL_SHARE or len(taken) == _TAIL_LINES:
            break
        taken.append(index)
    return taken


def excerpt(log: str, *, passing: str | None = None, budget: int = BUDGET_TOKENS) -> Excerpt:
    """The lines of `log` that explain the failure, in order, with `… N lines cut …` between.
    `passing`: the log of the same job when it last passed, if known."""
    lines = normalize(log)
    if not lines:
        return Excerpt("", (), 0, "")
    start, end = failing_step(lines)
    weights = _weights(lines, start, end, passing)
    selection = Selection(lines, budget)
    last = max(i for i, line in enumerate(lines) if line.strip()) if any(lines) else end
    selection.add([i for i in (start, end, last) if i != start or step_start(lines[i])])
    selection.add(sorted(_tail(lines, start, end)[: _TAIL_LINES // 4]))
    anchors = _distinct_first(
        lines, sorted((i for i, w in enumerate(weights) if w >= _ANCHOR), key=lambda i: -weights[i])
    )
    for rank, anchor in enumerate(anchors[:200]):
        if not selection.add(block(lines, anchor)):
            selection.add([anchor])
        if rank < _PARAGRAPHS:
            paragraph(selection, anchor, start if anchor >= start else 0)
        if rank == _PARAGRAPHS:
            fill_gaps(selection)
            selection.add(_tail(lines, start, end), partial=True)
    fill_gaps(selection)
    # Context is worth a share of the log, not the whole budget: a short log stays short.
    selection.budget = min(budget, max(selection.spent, approx_tokens(log) // 5))
    grow(selection, [*anchors[:8], end], start, end)
    fill_gaps(selection)
    kept = tuple(sorted(selection.kept))
    return Excerpt(
        render(lines, kept),
        kept,
        len(lines),
        _first_error(lines, kept, start, end),
        failure_signature(lines, kept, start, end),
    )


def _first_error(lines: list[str], kept: tuple[int, ...], start: int, end: int) -> str:
    """The kept line of the failing step that says most, the earliest of equals."""
    closing = end if runner_exit(lines[end]) else None
    inside = [i for i in kept if start <= i <= end and i != closing] or list(kept)
    if not inside:
        return ""
    best = max(inside, key=lambda i: (signal(lines[i]), -i))
    if not signal(lines[best]):
        best = inside[-1]  # nothing says "error": the step's last words
    return lines[best].strip()


_WORD = re.compile(r"[A-Za-z]{3,}")
_TAG, _WORDS = re.compile(r"^\[\w+\]"), re.compile(r"[^\W\d_]{2}")


def failure_signature(lines: list[str], kept: tuple[int, ...], start: int, end: int) -> str:
    """The failing step's three strongest lines that say something specific (three words or
    more: not a bare `[ERROR]` or `BUILD FAILURE`), with what changes between runs masked. One
    line alone would make every Maven failure the same; three, chosen from the whole step
    rather than what fit the budget, stay put when a rerun changes timings, ids and paths."""
    closing = end if runner_exit(lines[end]) else None
    inside = [i for i in range(start, end + 1) if i != closing and lines[i].strip()]
    ranked = sorted(inside, key=lambda i: (-signal(lines[i]), i))
    chosen: list[str] = []
    for index in ranked:
        masked = shape(lines[index])
        if len(_WORD.findall(masked)) >= 3 and masked not in chosen:
            chosen.append(masked)
        if len(chosen) == 3:
            break
    if not chosen and kept:
        chosen.append(shape(_first_error(lines, kept, start, end)))
    return "\n".join(chosen)


def fingerprint(check_name: str, first_error: str) -> str:
    """Stable id of a failure: the check's name and its first error with what changes between
    runs (times, durations, ids, temp paths, addresses) removed."""
    key = f"{check_name.strip().lower()}\n{shape(first_error)}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]
