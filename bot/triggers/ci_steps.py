"""Where the step that failed begins and ends in a CI log, whatever ran it. Pure.

The end is the runner's first exit line (`##[error]Process completed with exit code 1`,
`The command "…" exited with 1.`, `Finished: FAILURE`), else the log's last line. The start is
the line the runner opened that step with: for Travis, the `$ command` its exit line names;
otherwise the nearest step banner above the end (`##[group]Run …`, `$ …`, `[Pipeline] sh`, a
Docker build step, a Gradle task; not a Maven plugin's banner: a multi-module build fails in
one module and goes on to the next). A step that said next to nothing (a check of what an
earlier step left, `[ -n "$VERSION" ]`) takes in the steps before it until something was said,
or something said what failed: their words are the cause. Also here: the lines by which
wrappers and tools say that what they ran failed (`make: ***`, `error Command failed`).
"""

from __future__ import annotations

import re

from bot.triggers.ci_signals import SCAN, noise, signal

# A step ended badly: the runner's own words, then tools' generic ones.
_RUNNER_EXIT = re.compile(
    r'The command ".*" (?:exited|failed) with [1-9]\d*|^" (?:exited|failed) with [1-9]\d*\.$'
    r"|Process completed with exit code [1-9]"
    r"|^Finished: (?:FAILURE|ABORTED)|^ERROR: Job failed|marked build as failure"
    r"|^Done\. Your build exited with [1-9]|^Command exited with code [1-9]"
)
_TOOL_EXIT = re.compile(
    r"(?i)\bexit(?:ed)? (?:with )?(?:code|status) [1-9]|returned (?:a )?non-zero exit"
    r"|^(?:BUILD FAILED|BUILD FAILURE|FAILURE: Build failed)|Command failed with exit code [1-9]"
)
_WRAPPER_EXIT = re.compile(
    r"(?i)^npm ERR! code ELIFECYCLE|^error Command failed|^\s*make(?:\[\d+\])?: \*\*\* "
    r"|^ELIFECYCLE|^FAILURE: |^\*\* \w+ FAILED \*\*"
    r"|^Error: Process completed|^##\[error\]Process completed"
)
# Where a step (a command and its output) begins.
_STEP_START = re.compile(
    r"^##\[group\]Run |^\$ \S|^travis_fold:start:|^\[Pipeline\] (?:sh|bat|stage)\b"
    r"|^Step \d+/\d+ :|^#\d+ \[|^> Task :"
)

SAID_ENOUGH = 8  # lines of output that make a step its own explanation
_FAILED = 2.5  # a line's signal that says what failed
_WIDEN = 3  # steps above a silent one looked into, at most
_NAMED = re.compile(r'The command "(.*?)(?:" (?:exited|failed) with [1-9]\d*.*)?$')
_GROUP_OPEN, _GROUP_CLOSE = re.compile(r"^##\[group\]"), re.compile(r"^##\[endgroup\]")


def runner_exit(line: str) -> bool:
    """The runner says a step failed (GitHub Actions, Travis, Jenkins, GitLab)."""
    return _RUNNER_EXIT.search(line[:SCAN]) is not None


def tool_exit(line: str) -> bool:
    """A tool or script says it exited non-zero."""
    return _TOOL_EXIT.search(line[:SCAN]) is not None


def wrapper_exit(line: str) -> bool:
    """A line a wrapper (npm, yarn, make, a script) prints after what it ran failed: the lines
    just above it say why."""
    return tool_exit(line) or _WRAPPER_EXIT.search(line[:SCAN]) is not None


def step_start(line: str) -> bool:
    """A line that begins a step or a command's output."""
    return _STEP_START.search(line[:SCAN]) is not None


def _named_command(lines: list[str], end: int) -> str | None:
    """The command a Travis exit line names, its first line if it spans several."""
    for index in range(end, max(-1, end - 60), -1):
        match = _NAMED.search(lines[index])
        if match:
            return match.group(1).strip() or None
    return None


def _command_start(lines: list[str], end: int) -> int | None:
    """The `$ command` line that began the step whose exit line is at `end`."""
    command = _named_command(lines, end)
    if command is None:
        return None
    echoed = f"$ {command}"
    return next((i for i in range(end - 1, -1, -1) if lines[i].startswith(echoed)), None)


def _previous_start(lines: list[str], start: int) -> int:
    return next((i for i in range(start - 1, -1, -1) if step_start(lines[i])), 0)


def output_lines(lines: list[str], start: int, end: int) -> int:
    """Lines a step printed between `start` and `end`: not blank, not noise, and not the
    script that GitHub Actions echoes between `##[group]` and `##[endgroup]`."""
    said, echoed = 0, _GROUP_OPEN.match(lines[start]) is not None
    for line in lines[start + 1 : end]:
        if _GROUP_OPEN.match(line):
            echoed = True
        elif _GROUP_CLOSE.match(line):
            echoed = False
        elif not echoed and line.strip() and not noise(line):
            said += 1
    return said


def failing_step(lines: list[str]) -> tuple[int, int]:
    """First and last line of the step that failed."""
    end = next((i for i, line in enumerate(lines) if runner_exit(line)), None)
    if end is None:
        end = next((i for i in reversed(range(len(lines))) if lines[i].strip()), 0)
    start = _command_start(lines, end)
    if start is None:
        start = _previous_start(lines, end)
    for _ in range(_WIDEN):
        if start == 0 or output_lines(lines, start, end) >= SAID_ENOUGH:
            break
        if any(signal(line) >= _FAILED for line in lines[start + 1 : end]):
            break  # it said little, but it said what failed
        start = _previous_start(lines, start)
    return start, end
