"""Cut a CI log down to the part that explains the failure. Pure: text in, text out.

Works without knowing the runner. Structure first (`ci_steps`): the step that failed, from the
line that opened it to the runner's first exit line; its last lines are always kept, because
tools print their verdict last. Then the lines that carry failure signals (`ci_signals`),
weighed by where they stand and what the log's structure says of them (`ci_weights`), each
with a little context, until the token budget is spent (`ci_select`). Noise (progress,
downloads, `npm ERR!` and Maven boilerplate, a frame repeated a hundred times) is dropped. With
a passing run's log of the same job, lines that occur only in the failing log count most. The
failing step's strongest lines also give the failure's fingerprint, used to cap repair
attempts per failure.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from bot.triggers.ci_select import LONG_LINE, Selection, block, fill_gaps, grow, paragraph, render
from bot.triggers.ci_signals import noise, normalize, shape, signal
from bot.triggers.ci_steps import failing_step, runner_exit, step_start
from bot.triggers.ci_weights import anchors_of, line_weights

__all__ = ["BUDGET_TOKENS", "Excerpt", "approx_tokens", "excerpt", "fingerprint", "normalize"]

BUDGET_TOKENS = 2000
_TAIL_SHARE = 0.4  # of the budget, for the failing step's last lines
_TAIL_LINES = 40
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
    weights = line_weights(lines, start, end, normalize(passing) if passing else None)
    selection = Selection(lines, budget)
    last = max(i for i, line in enumerate(lines) if line.strip()) if any(lines) else end
    selection.add([i for i in (start, end, last) if i != start or step_start(lines[i])])
    selection.add(sorted(_tail(lines, start, end)[: _TAIL_LINES // 4]))
    anchors = anchors_of(lines, weights)
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
