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
import itertools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from bot.triggers.ci_signals import (
    boilerplate,
    clean,
    frame,
    heading,
    noise,
    progress,
    runner_exit,
    shape,
    signal,
    step_start,
    wrapper_exit,
)

BUDGET_TOKENS = 2000
_TAIL_SHARE = 0.4  # of the budget, for the failing step's last lines
_TAIL_LINES = 40
_LONG_LINE = 600  # characters shown of one line
_CONTEXT_BEFORE, _CONTEXT_AFTER, _CONTINUATION = 2, 4, 30
_PARAGRAPHS = 8  # anchors whose section is kept from its heading
_GROW_UP, _GROW_DOWN = 120, 40  # how far context may widen around a seed
_CONTINUES = (" ", "\t", "-", "+", "@")  # first characters of an indented or a diff's line
_REPEATS = 12  # copies of one line kept before the rest count as repetition


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


def failing_step(lines: list[str]) -> tuple[int, int]:
    """First and last line of the step that failed: the first runner exit line, else the last
    tool exit line, else the end of the log; back to where that step began."""
    end = next((i for i, line in enumerate(lines) if runner_exit(line)), None)
    if end is None:
        end = next((i for i in reversed(range(len(lines))) if lines[i].strip()), 0)
    start = next((i for i in range(end - 1, -1, -1) if step_start(lines[i])), 0)
    said = sum(1 for line in lines[start:end] if line.strip() and not noise(line))
    if said < 8 and start > 0:
        # A step that failed saying (next to) nothing: the step before it may have said why.
        start = next((i for i in range(start - 1, -1, -1) if step_start(lines[i])), 0)
    return start, end


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
    return weights


def _before_exits(lines: list[str], weights: list[float], start: int, end: int) -> None:
    """The lines just above a line saying a command failed say why: boost them."""
    for index in range(start, end + 1):
        if index != end and not wrapper_exit(lines[index]):
            continue
        boost, above = 3.0, index - 1
        while boost > 0.5 and above >= start:
            line = lines[above]
            if line.strip() and not noise(line) and not wrapper_exit(line):
                weights[above] += boost
                boost -= 0.75
            above -= 1


def _said(lines: list[str], start: int, step: int, count: int, stop: int) -> int:
    """The index `count` lines with text away from `start` (in direction `step`), blank lines
    not counted: a double-spaced log is as near as a dense one. Never past `stop`."""
    index = start
    while count > 0 and index != stop:
        index += step
        if lines[index].strip():
            count -= 1
    return index


def _block(lines: list[str], anchor: int, low: int, high: int) -> range:
    """The anchor with a little context, and the frames or indented lines that continue it."""
    last = _said(lines, anchor, 1, _CONTEXT_AFTER, high)
    reach = _said(lines, anchor, 1, _CONTINUATION, high)
    while last < reach:
        following = _said(lines, last, 1, 1, high)
        if not (frame(lines[following]) or lines[following][:1] in _CONTINUES):
            break
        last = following
    return range(_said(lines, anchor, -1, _CONTEXT_BEFORE, low), last + 1)


class _Selection:
    """Kept lines within a token budget, repetition and noise refused."""

    def __init__(self, lines: list[str], budget: int) -> None:
        self.lines, self.budget = lines, budget
        self.kept: set[int] = set()
        self.shapes: Counter[str] = Counter()
        self.spent = 0
        self.growing = False
        self.filling = False

    def cost(self, index: int) -> int:
        return approx_tokens(self.lines[index][:_LONG_LINE]) + 1

    def wanted(self, index: int) -> bool:
        line = self.lines[index]
        if index in self.kept or not line.strip():
            return False
        if progress(line):
            return False
        text = line.strip()
        if boilerplate(line):
            return self.growing and self.shapes[text] == 0
        if index > 0 and self.lines[index - 1].strip() == text:
            # A run of one line (recursion, a retry loop) shows once, unless it is a short
            # hole between two kept lines.
            return self.filling or self.shapes[text] == 0
        return self.shapes[text] < _REPEATS

    def add(self, indices: Iterable[int], *, partial: bool = False) -> bool:
        """Keep these lines if all fit (or, when `partial`, as many as fit, in order)."""
        chosen = [i for i in indices if self.wanted(i)]
        total = sum(self.cost(i) + 4 for i in chosen)  # 4: a possible "… cut …" line
        if not partial and self.spent + total > self.budget:
            return False
        for index in chosen:
            if not self.wanted(index):
                continue  # a copy of a line this call already kept
            cost = self.cost(index) + 4
            if self.spent + cost > self.budget:
                return False
            self.kept.add(index)
            self.shapes[self.lines[index].strip()] += 1
            self.spent += cost
        return True


def _tail(lines: list[str], start: int, end: int) -> list[int]:
    """The failing step's last lines, newest first, within the tail's share of the budget."""
    taken: list[int] = []
    spent = 0
    for index in range(end, start - 1, -1):
        if not lines[index].strip() or noise(lines[index]):
            continue
        spent += approx_tokens(lines[index][:_LONG_LINE]) + 1
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
    selection = _Selection(lines, budget)
    last = max(i for i, line in enumerate(lines) if line.strip()) if any(lines) else end
    selection.add([i for i in (start, end, last) if i != start or step_start(lines[i])])
    selection.add(sorted(_tail(lines, start, end)[: _TAIL_LINES // 4]))
    anchors = sorted((i for i, w in enumerate(weights) if w >= 0.75), key=lambda i: -weights[i])
    for rank, anchor in enumerate(anchors[:200]):
        if not selection.add(_block(lines, anchor, 0, len(lines) - 1)):
            selection.add([anchor])
        if rank < _PARAGRAPHS:
            _paragraph(selection, anchor, start if anchor >= start else 0)
        if rank == _PARAGRAPHS:
            _fill_gaps(selection)
            selection.add(_tail(lines, start, end), partial=True)
    _fill_gaps(selection)
    # Context is worth a share of the log, not the whole budget: a short log stays short.
    cap = min(budget, max(selection.spent, approx_tokens(log) // 5))
    selection.budget = cap
    kept: tuple[int, ...] = ()
    for _ in range(3):
        _grow(selection, [*anchors[:8], end], start, end)
        _fill_gaps(selection)
        # What a line costs is guessed high (a "… cut …" line for each): spend the rest.
        unspent = cap - approx_tokens(_render(lines, tuple(sorted(selection.kept))))
        if unspent < 0 and kept:
            break  # the guess was low this time: the last selection that fitted
        kept = tuple(sorted(selection.kept))
        if unspent < 40:
            break
        selection.budget += unspent - 20
    return Excerpt(
        _render(lines, kept),
        kept,
        len(lines),
        _first_error(lines, kept, start, end),
        failure_signature(lines, kept, start, end),
    )


def _fill_gaps(selection: _Selection, widest: int = 4) -> None:
    """Lines between two kept ones a few lines apart: a hole costs more to read than to fill."""
    selection.growing = True
    kept = sorted(selection.kept)
    selection.filling = True
    for low, high in itertools.pairwise(kept):
        if 1 < high - low <= widest + 1:
            selection.add(range(low + 1, high))
    selection.filling = False


def _paragraph(selection: _Selection, anchor: int, floor: int) -> None:
    """Up from an anchor to the heading that opens its section (a test's name, a rule), if it
    is near; a failure's report starts there."""
    lines = selection.lines
    for top in range(anchor - 1, max(floor, anchor - 30) - 1, -1):
        if heading(lines[top]):
            selection.add(range(top, anchor), partial=True)
            return


def _grow(selection: _Selection, seeds: list[int], start: int, end: int) -> None:
    """Spend what is left of the budget widening the kept regions around the seeds, mostly
    upwards (a failure's heading comes before its error line), a few lines at a time."""
    lines = selection.lines
    selection.growing = True
    frontier = {seed: (seed, seed) for seed in seeds}
    while frontier:
        for seed, (low, high) in list(frontier.items()):
            floor, ceiling = (start, end) if start <= seed <= end else (0, len(lines) - 1)
            floor, ceiling = max(floor, seed - _GROW_UP), min(ceiling, seed + _GROW_DOWN)
            up = range(max(floor, low - 3), low)
            down = range(high + 1, min(ceiling, high + 1) + 1)
            if not up and not down:
                del frontier[seed]
                continue
            if (
                not selection.add([*up, *down], partial=True)
                and selection.spent >= selection.budget - 8
            ):
                return
            frontier[seed] = (up.start if up else low, down.stop - 1 if down else high)


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


def _render(lines: list[str], kept: tuple[int, ...]) -> str:
    out: list[str] = []
    previous = -1
    for index in kept:
        gap = index - previous - 1
        if gap > 0 and any(line.strip() for line in lines[previous + 1 : index]):
            out.append(f"… {gap} line{'s' if gap != 1 else ''} cut …")
        line = lines[index]
        out.append(line if len(line) <= _LONG_LINE else f"{line[:_LONG_LINE]} … (line cut)")
        previous = index
    rest = len(lines) - previous - 1
    if kept and rest > 0:
        out.append(f"… {rest} line{'s' if rest != 1 else ''} cut …")
    return "\n".join(out)


def fingerprint(check_name: str, first_error: str) -> str:
    """Stable id of a failure: the check's name and its first error with what changes between
    runs (times, durations, ids, temp paths, addresses) removed."""
    key = f"{check_name.strip().lower()}\n{shape(first_error)}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]
