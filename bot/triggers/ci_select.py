"""Which lines of a CI log an excerpt keeps, within a token budget, and how it reads. Pure.

A `Selection` knows the exact cost of its rendering (each kept line, and a `… N lines cut …`
line wherever lines with text were left out), so the budget is spent to the token. It refuses
progress and download chatter, shows a wrapper's boilerplate (`npm ERR!`, Maven's help) only
where it fills a hole between kept lines, and one line repeated many times only a few times.
Around what it was asked to keep it adds context: the frames and indented or diff lines that
continue an error, the heading above it, the short holes between kept lines.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Iterable

from bot.triggers.ci_signals import boilerplate, frame, heading, progress

LONG_LINE = 600  # characters shown of one line
_CONTEXT_BEFORE, _CONTEXT_AFTER, _CONTINUATION = 2, 4, 30
_FRAMES = 12  # a trace's frames an error brings: the rest are the framework's
_CONTINUES = (" ", "\t", "-", "+", "@")  # first characters of an indented or a diff's line
_GROW_UP, _GROW_DOWN = 120, 40  # how far context may widen around a seed
_WRAPPER_HOLE = 12  # lines of boilerplate between two kept lines that are kept with them
_REPEATS = 12  # copies of one line kept before the rest count as repetition


def shown(line: str) -> str:
    return line if len(line) <= LONG_LINE else f"{line[:LONG_LINE]} … (line cut)"


def _marker(gap: int) -> str:
    return f"… {gap} line{'s' if gap != 1 else ''} cut …"


def render(lines: list[str], kept: Iterable[int]) -> str:
    """The kept lines in order, a `… N lines cut …` line wherever lines with text were cut."""
    out: list[str] = []
    previous = -1
    for index in sorted(kept):
        if any(map(str.strip, lines[previous + 1 : index])):
            out.append(_marker(index - previous - 1))
        out.append(shown(lines[index]))
        previous = index
    if out and any(map(str.strip, lines[previous + 1 :])):
        out.append(_marker(len(lines) - previous - 1))
    return "\n".join(out)


class Selection:
    """Kept lines within a token budget (about four bytes a token), repetition and noise
    refused. `growing`: context is being added, and a wrapper's line may join once; `filling`:
    holes between kept lines are being filled, and anything in them may."""

    def __init__(self, lines: list[str], budget: int) -> None:
        self.lines, self.budget = lines, budget
        self.kept: set[int] = set()
        self._order: list[int] = []
        self.shapes: Counter[str] = Counter()
        self._bytes = 0
        self.growing = False
        self.filling = False
        self._texted = [0, *itertools.accumulate(1 if line.strip() else 0 for line in lines)]

    @property
    def spent(self) -> int:
        """Tokens the rendering costs."""
        return (self._bytes + 2) // 4

    def _gap(self, low: int, high: int) -> int:
        """Bytes of the cut line between kept lines `low` and `high` (-1 and len: the ends)."""
        if high - low < 2 or self._texted[high] == self._texted[low + 1]:
            return 0
        return len(_marker(high - low - 1).encode()) + 1

    def _delta(self, index: int, sign: int) -> int:
        at = bisect.bisect_left(self._order, index)
        low = self._order[at - 1] if at > 0 else -1
        ahead = at + 1 if sign < 0 else at
        high = self._order[ahead] if ahead < len(self._order) else len(self.lines)
        own = len(shown(self.lines[index]).encode()) + 1
        alone = len(self._order) == (1 if sign < 0 else 0)  # no cut line without a kept one
        before = 0 if alone else self._gap(low, high)
        return sign * (own + self._gap(low, index) + self._gap(index, high) - before)

    def wanted(self, index: int) -> bool:
        line = self.lines[index]
        if index in self.kept or not line.strip() or progress(line):
            return False
        text = line.strip()
        if boilerplate(line):
            return self.filling or (self.growing and self.shapes[text] == 0)
        if index > 0 and self.lines[index - 1].strip() == text:
            # A run of one line (recursion, a retry loop) shows once, unless it is a short
            # hole between two kept lines.
            return self.filling or self.shapes[text] == 0
        return self.shapes[text] < _REPEATS

    def _keep(self, index: int) -> None:
        self._bytes += self._delta(index, 1)
        bisect.insort(self._order, index)
        self.kept.add(index)
        self.shapes[self.lines[index].strip()] += 1

    def _drop(self, index: int) -> None:
        self._bytes += self._delta(index, -1)
        self._order.remove(index)
        self.kept.discard(index)
        self.shapes[self.lines[index].strip()] -= 1

    def add(self, indices: Iterable[int], *, partial: bool = False) -> bool:
        """Keep these lines if all fit (or, when `partial`, as many as fit, in order)."""
        added: list[int] = []
        for index in indices:
            if not self.wanted(index):
                continue
            self._keep(index)
            if self.spent > self.budget:
                self._drop(index)
                if not partial:
                    for earlier in reversed(added):
                        self._drop(earlier)
                return False
            added.append(index)
        return True


def said(lines: list[str], start: int, step: int, count: int, stop: int) -> int:
    """The index `count` lines with text away from `start` (in direction `step`), blank lines
    not counted: a double-spaced log is as near as a dense one. Never past `stop`."""
    index = start
    while count > 0 and index != stop:
        index += step
        if lines[index].strip():
            count -= 1
    return index


def _lead(line: str) -> tuple[str, ...]:
    """A line's first three words: alike lines of a list share them (`Unable to create …`)."""
    return tuple(line.split()[:3])


def block(lines: list[str], anchor: int) -> range:
    """The anchor with a little context, and the frames or indented lines that continue it."""
    high = len(lines) - 1
    last = said(lines, anchor, 1, _CONTEXT_AFTER, high)
    reach = said(lines, anchor, 1, _CONTINUATION, high)
    frames, lead = 0, _lead(lines[anchor])
    while last < reach and frames < _FRAMES:
        following = said(lines, last, 1, 1, high)
        if frame(lines[following]):
            frames += 1
        elif lines[following][:1] not in _CONTINUES and _lead(lines[following]) != lead:
            break  # not indented, not a diff's, not one more of a list of alike lines
        last = following
    return range(said(lines, anchor, -1, _CONTEXT_BEFORE, 0), last + 1)


def fill_gaps(selection: Selection, widest: int = 4) -> None:
    """Lines between two kept ones a few lines apart: a hole costs more to read than to fill.
    A wider hole too when all it holds is a wrapper's boilerplate (Maven's help after its
    error): cut, it would split one report in two for the sake of a few short lines."""
    selection.growing = selection.filling = True
    lines = selection.lines
    for low, high in itertools.pairwise(sorted(selection.kept)):
        hole = range(low + 1, high)
        if 0 < len(hole) <= widest or (
            len(hole) <= _WRAPPER_HOLE
            and all(boilerplate(lines[i]) or not lines[i].strip() for i in hole)
        ):
            selection.add(hole)
    selection.filling = False


def paragraph(selection: Selection, anchor: int, floor: int) -> None:
    """Up from an anchor to the heading that opens its section (a test's name, a rule), if it
    is near; a failure's report starts there."""
    lines = selection.lines
    for top in range(anchor - 1, max(floor, anchor - 30) - 1, -1):
        if heading(lines[top]):
            selection.add(range(top, anchor), partial=True)
            return


def grow(selection: Selection, seeds: list[int], start: int, end: int) -> None:
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
