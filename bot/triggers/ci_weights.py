"""Each line's claim to a place in a CI log's excerpt. Pure.

A line's own signal (`ci_signals.signal`), weighted by where it stands: inside the failing step,
more the nearer its end; before it, less; after it (cleanup), least. On top of that, structure:
the first strong line of the step (the first error explains most); the lines just above a
command's failure (`make: ***`, `error Command failed`), which say why; an error where it first
showed when the log says it again (a summary, a retried command); the failure line that first
named what the step's closing summary names. With a passing run's log of the same job, a line it
lacks counts more and a line it has counts less.
"""

from __future__ import annotations

import re
from collections import Counter

from bot.triggers.ci_signals import SCAN, noise, shape, signal
from bot.triggers.ci_steps import wrapper_exit

# A test's or a file's name (`tests/test_x.py::test_y`, `ext/x/tests/bug1.phpt`, `Foo#bar`).
_NAME = re.compile(r"(?<![\w/.-])[\w./-]*\w(?:\.[A-Za-z]{1,6}|::\w+|#\w+)(?:::\w+)*(?![\w/-])")
_SUMMARY_LINES = 60  # the step's last lines, where a summary names what failed
_FAILING = 2.5  # a line's own signal that says something failed
_NAMED_WEIGHT = 5.0  # what the first failure line naming a summarised name is worth
_ANCHOR = 0.75  # weight that makes a line worth keeping with its context
_COPIES = 2  # anchors saying the same thing taken in turn, before the rest of their copies
_TAG, _WORDS = re.compile(r"^\[\w+\]"), re.compile(r"[^\W\d_]{2}")


def line_weights(
    lines: list[str], start: int, end: int, passing: list[str] | None = None
) -> list[float]:
    """Each line's claim to a place in the excerpt; `passing`: a passing run's lines."""
    green = {shape(line) for line in passing} if passing is not None else None
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


def anchors_of(lines: list[str], weights: list[float]) -> list[int]:
    """The lines worth keeping with their context, the weightiest first."""
    ranked = sorted((i for i, w in enumerate(weights) if w >= _ANCHOR), key=lambda i: -weights[i])
    return _distinct_first(lines, ranked)


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
