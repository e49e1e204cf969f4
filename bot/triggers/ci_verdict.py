"""Flaky or broken: whether a CI failure is worth a repair run, or only a re-run. Pure.

A repair costs a model run and an attempt; a re-run of the failed jobs costs a few CI minutes.
A failure is flaky when the same job passed on the same commit, when what it says is the network
or the runner failing (timeouts, connection resets, rate limits, a full disk, a cancelled or lost
runner) rather than the code, or when the files it names are none of those the pull request
changed and it says nothing a test or a compiler would say. Anything else is broken.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

_INFRASTRUCTURE = re.compile(
    r"(?i)\b(?:ETIMEDOUT|ECONNRESET|ECONNREFUSED|EAI_AGAIN|ENOTFOUND|ENOSPC|EPIPE)\b"
    r"|connection (?:reset|refused|timed out)|(?:read|connect|i/o|tls handshake) timeout"
    r"|timed? ?out (?:after|while|waiting)|operation timed out|deadline exceeded"
    r"|rate limit|too many requests"
    r"|(?:status|code|http/[\d.]+|returned error:?)\W{0,3}(?:429|50[234])\b"
    r"|bad gateway|service unavailable|gateway time-?out|could not resolve host"
    r"|temporary failure in name resolution|name or service not known|network is unreachable"
    r"|no space left on device|disk quota exceeded|out of disk"
    r"|the runner has received a shutdown signal|lost communication with the server"
    r"|the operation was canceled|runner .* (?:lost|offline)|received a shutdown signal"
    r"|killed by signal 9|oom-?kill|the job running on runner .* has exceeded"
    r"|unable to access '[^']+': (?:the requested url returned error: 5|could not resolve|"
    r"failed to connect|operation timed out)|remote end hung up unexpectedly"
)
# What only the code under test says: a failed assertion or test, a compile error.
_CODE = re.compile(
    r"(?i)assert|\bexpected\b|--- FAIL|\bfailures?: *[1-9]|\btests? failed|^FAIL(?:ED)?:? \S"
    r"|\.\w{1,5}:\d+(?::\d+)?:? (?:fatal )?error|error\[E\d+\]|error TS\d+"
    r"|compilation (?:error|failure)"
    r"|\bsyntax ?error|\btype ?error|undefined (?:reference|method|variable)|cannot find symbol"
    r"|is not defined|no (?:such|matching) (?:method|function|member)"
)
_PATH = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.[A-Za-z]{1,5})(?=[:(\s,'\"]|$)")
_RUNNER_GAVE_UP = ("cancelled", "timed_out", "startup_failure")

Kind = Literal["flaky", "broken"]


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    reason: str

    @property
    def flaky(self) -> bool:
        return self.kind == "flaky"


_CHATTER = re.compile(r"\[(?:info|debug|trace)\]|\b(?:INFO|DEBUG|TRACE)\b")


def infrastructure_line(lines: Iterable[str]) -> str | None:
    """The first line (not a program's own info or debug chatter) that blames the network or
    the runner, if any."""
    return next(
        (
            line.strip()
            for line in lines
            if _INFRASTRUCTURE.search(line) and not _CHATTER.search(line)
        ),
        None,
    )


def named_files(lines: Iterable[str]) -> set[str]:
    """Paths the failure mentions (`src/x.py:12`, `at Foo (lib/foo.js:3:1)`)."""
    return {match.group(1) for line in lines for match in _PATH.finditer(line)}


def related(names: Iterable[str], changed: Iterable[str]) -> bool:
    """Whether any named file is a changed one, sits beside one, or tests one by name."""
    changed_paths = [PurePosixPath(path) for path in changed]
    for name in names:
        named = PurePosixPath(name)
        for path in changed_paths:
            if named.name == path.name or str(path).endswith(str(named)):
                return True
            if named.parent != PurePosixPath(".") and named.parent == path.parent:
                return True
            if path.stem and path.stem in named.stem:
                return True
    return False


def classify(
    failure: Sequence[str],
    *,
    conclusion: str | None = None,
    passed_on_same_commit: bool = False,
    changed_files: Sequence[str] | None = None,
) -> Verdict:
    """Flaky or broken, from the lines that explain the failure (an excerpt's) and what else is
    known: the run's conclusion, whether the same job passed on this commit, the PR's files."""
    if passed_on_same_commit:
        return Verdict("flaky", "the same job passed on this commit")
    says_code = any(_CODE.search(line) for line in failure)
    blamed = infrastructure_line(failure)
    if blamed is not None and not says_code:
        return Verdict("flaky", f"the log blames the network or the runner: `{blamed[:200]}`")
    if conclusion in _RUNNER_GAVE_UP and not says_code:
        return Verdict("flaky", f"the run ended `{conclusion}` before any test said why")
    if changed_files and not says_code:
        names = named_files(failure)
        if names and not related(names, changed_files):
            return Verdict("flaky", "the failure names none of the files this pull request changed")
    return Verdict("broken", "the failure points at the code")
