"""What a CI log line says, whatever ran it: cleaned text, failure signal, noise.

Pure and generic: words any tool uses when something fails (error, failed, exception, expected,
not found…), weighed by how they are said (`error:` and `NullPointerException` more than
"rejects headers with an exception"); lines that say nothing failed, whatever words they hold
(a passed or skipped test, a warning, a DEBUG record, a rule); the boilerplate wrappers repeat
and the progress chatter of downloads and installs. Runner- and tool-specific shapes
(`##[error]`, pytest's `E   `, `[error]`) only add to a score.
"""

from __future__ import annotations

import functools
import re

SCAN = 400  # characters of a line that patterns look at: signals come early, and a
# 3,000-character line would cost each pattern a scan of all of it.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]?")
# GitHub Actions' timestamp, optionally after `gh run view --log`'s "job<TAB>step<TAB>".
_TIMESTAMP = re.compile(r"^(?:[^\t]*\t[^\t]*\t)?\ufeff?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ?")
_TRAVIS_MARK = re.compile(r"travis_(?:fold|time):[a-z]+:[^\s]*\s?")

_PROGRESS = re.compile(
    r"(?i)\s*(?:download(?:ing|ed)?|fetch(?:ing|ed)|get:\d+|hit:\d+|ign:\d+|receiving objects"
    r"|resolving deltas|unpacking|collecting|requirement already|installing|setting up"
    r"|preparing to unpack|selecting previously|processing triggers|extracting|pulling"
    r"|progress|compiling|building|remote: (?:counting|compressing|enumerating|total)"
    r"|\[INFO\] Download(?:ing|ed)|npm warn|warning .*deprecated)\b(?![._-]\w)"
)  # a word, not a name's start: `downloader_test.go:679: failed…` is no download
_PROGRESS_BAR = re.compile(r"\d{1,3}(?:\.\d)?%|\[[=#>-]{3,}|\d+(?:\.\d+)? ?[KMG]i?B/s")
_WRAPPER = re.compile(
    r"(?i)^npm ERR!(?:\s*$| (?:code ELIFECYCLE|errno|syscall|Failed at the|This is probably not|"
    r"A complete log|Exit status|.*\blifecycle\b|Tell the author|You can get|"
    r"not with npm itself|/.*_logs/))|^npm ERR! +\S+@\S+ \S+: `|^error Command failed with exit"
    r"|^info Visit https://yarnpkg|^ELIFECYCLE|^\s*make(?:\[\d+\])?: \*\*\* \[|"
    r"^\[ERROR\](?:\s*$| (?:-> \[Help 1\]|To see the full stack|Re-run Maven|For more information"
    r"|\[Help 1\] http|After correcting the problems|\s*mvn <\w+> -rf ))"
)
# A stack frame: indented (Java, Python, Ruby, gdb), or not but ending in its place
# (PowerShell's `at Verify-Equal, /path/Verify-Equal.ps1:16`, `at <ScriptBlock>, <No file>:1`).
_FRAME = re.compile(
    r"^\s+(?:at |File \"|from |\(.*\) [\w/.-]+:\d+|#\d+ 0x|\S+\.\w+:\d+:)|^at \S.*:\d+\)?$"
)
_NONE = re.compile(
    r"(?i)\b(?:0|no) (?:errors?|failures?|failed|failing|warnings?)\b|(?:errors?|failures?|failed)"
    r"(?: count)?[:=]? ?0\b|-Werror|error_reporting|\berror\w*\.\w{1,4}\b|\bfail_fast\b|--fail-\w+"
    r"|\bon_?failure\b|set -e|\|\| true"
)
# A numbered failure (`1) …`), a bullet, a located diagnostic (`src/x.c:12:3: …`).
_WARNED = 0.5  # what a warning weighs
_LOCATED = re.compile(r"^\s*(?:\d+\)|[●•]|--- FAIL|\S+\.\w+:\d+(?::\d+)?:)\s")
# (pattern, weight, words one of which the lowercased line must contain for the pattern to be
# tried: most lines say nothing, and `in` is far cheaper than a case-blind regex).
_SIGNALS: tuple[tuple[re.Pattern[str], float, tuple[str, ...]], ...] = (
    (
        # `error` as a word of a sentence or a flag (`errlog_type error`) says less: below.
        re.compile(
            r"(?i)\b(?:error|fatal)(?:\[\w+\])?:|\berr!|\[error\]|^e\s{2,}\S|(?-i:\bERROR\b|\bError\b)"
        ),
        3,
        ("err", "fatal", "e  "),
    ),
    (
        # An exception by its name (`NullPointerException`, `Exception:`), not a test's words
        # ("rejects illegal headers with an exception"): those are below.
        re.compile(
            r"\w(?:Exception|Error)\b|\.Exception\b|\bException:|EXCEPTION"
            r"|(?i:\bexception:|\btraceback\b|\bpanic(?:ked)?\b|segmentation fault|core dump)"
        ),
        3,
        ("exception", "traceback", "panic", "segmentation", "core dump"),
    ),
    (
        # A verdict in capitals (`*** FAILED ***`, `FAIL: test_x`) or a cross.
        re.compile(r"\bFAIL(?:ED|URE|S)?\b|✗|✖|✘|^not ok \d"),
        3,
        ("fail", "✗", "✖", "✘", "not ok"),
    ),
    (
        re.compile(r"(?i:\bfail(?:ed|ure|s|ing)?\b)|×"),
        2.5,
        ("fail", "×"),
    ),
    (
        re.compile(r"(?i)\bassert(?:ion)?\w*|\bexpected\b|\bactual\b|\bbut (?:got|was)\b|^[-+] "),
        2,
        ("assert", "expected", "actual", "but ", "- ", "+ "),
    ),
    (re.compile(r"^##\[error\]"), 2, ("##[error]",)),
    (
        re.compile(
            r"(?i)\b(?:error|exception|not found|no such|cannot|can't|could ?n[o']t|unable to|"
            r"undefined|unresolved|missing|denied|refused|invalid|unexpected|illegal|incompatible|"
            r"timed? ?out|abort(?:ed|ing)?|killed|violations?|offenses?|mismatch|differ|"
            r"unsatisfiable|conflict|broken|wrong|bad\b|does not|doesn't|is not|must be)"
        ),
        1.5,
        (
            "error",
            "exception",
            "not",
            "no such",
            "can",
            "could",
            "unable",
            "undefined",
            "unresolved",
            "missing",
            "denied",
            "refused",
            "invalid",
            "unexpected",
            "illegal",
            "incompatible",
            "time",
            "abort",
            "killed",
            "violation",
            "offense",
            "mismatch",
            "differ",
            "unsatisfiable",
            "conflict",
            "broken",
            "wrong",
            "bad",
            "does",
            "must be",
        ),
    ),
    (_LOCATED, 1.5, ("",)),  # anchored at the start: cheap to try on any line
    (re.compile(r"(?i)\bwarn(?:ing)?\b"), _WARNED, ("warn",)),
)
# A line reporting a success, whatever words its test's name holds ("test_npm_err PASSED").
# A line reporting a success or a skip, whatever words its test's name holds ("test_npm_err
# PASSED", "[+] - error in one container…", "…NoSuchElementException SKIPPED").
# An expected failure (`XFAIL`) is one too.
_SUCCESS_END = re.compile(
    r"(?:\bPASS(?:ED)?|\bOK|\bok|✓|✔|\bSKIP(?:PED)?|\bIGNORED|\bPENDING|\bX(?:FAIL|PASS)(?:ED)?)"
    r"(?:\s*\[\s*\d+%\])?\s*$"
)
_SUCCESS_START = re.compile(
    r"^(?:ok|PASS|SKIP(?:PED)?|XFAIL|XPASS|✓|✔|\[\+\])\s|^.{0,200}\bXFAIL\b"
)
# A warning, whatever it warns of ("Warning: this expression will fail with a 'badarith'
# exception"): worth what a warning is worth.
_WARNING = re.compile(r"(?i)(?:^|[\s:\[(])warn(?:ing)?\b\]?:?\s|^\[?warn(?:ing)?\]")
# A program's own log record at a level that never reports the failure: `DEBUG`/`TRACE`
# anywhere near the start, `INFO` after a time stamp or opening the line (not Maven's `[INFO]`).
_CHATTER = re.compile(
    r"^.{0,80}?\b(?:DEBUG|TRACE|FINE(?:ST)?)\b|^.{0,40}?\d\d:\d\d:\d\d\S*\s.{0,40}?\bINFO\b"
    r"|^(?:INFO|DEBUG|TRACE|FINE)(?::|\s)"
)
# Rules drawn with dashes (`- - - -`, `-----`) are not a diff's lines.
_RULE = re.compile(r"^[\s\W_]*$")
_ERROR_TAG = re.compile(r"(?i)^\[error\]\s*")
_TAG_WEIGHT = 1.5
# An error that a warning line may still report ("warning: … error: …", "WARN … Exception:").
_STRONG = re.compile(
    r"(?i)\berror(?:\[\w+\])?:|\bfatal:|(?:Error|Exception):|\btraceback\b|\bpanic:"
)
_NONE_WORDS = ("0", "no ", "werror", "error", "fail", "set -e", "|| true")


def _gate(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(word) for word in words))


_GATES = tuple(_gate(words) for _, _, words in _SIGNALS)
_ANY_GATE = _gate(tuple(word for _, _, words in _SIGNALS for word in words if word))
_NONE_GATE = _gate(_NONE_WORDS)


def clean(line: str) -> str:
    """The text a reader sees: no colour, no timestamp, no Travis fold marks. (A progress bar's
    carriage returns are line breaks to `str.splitlines()`; its lines are noise.)"""
    line = _TIMESTAMP.sub("", _ANSI.sub("", line))
    return _TRAVIS_MARK.sub("", line).rstrip()


def normalize(log: str) -> list[str]:
    """The log's lines as a reader sees them, one for each of `log.splitlines()`."""
    return [clean(line) for line in log.splitlines()]


_HEADING = re.compile(r"^\s*(?:[=_\-*#~]{3,}|\S.*\s[=_\-*#~]{3,}$)|^\s*(?:\d+\)|[●•✕✗]) \S|:$")


def heading(line: str) -> bool:
    """A rule or a title line that opens a section of output (pytest's `____ test ____`,
    `1) TestName`, `Failures:`)."""
    return _HEADING.search(line[:SCAN]) is not None


@functools.lru_cache(maxsize=8192)
def progress(line: str) -> bool:
    """Progress bars and download or install chatter: never worth a place."""
    head = line[:SCAN]
    if _PROGRESS.match(head) is not None:
        return True
    return ("%" in head or "[" in head or "B/s" in head) and _PROGRESS_BAR.search(head) is not None


@functools.lru_cache(maxsize=8192)
def boilerplate(line: str) -> bool:
    """What wrappers print around a real error (npm ERR! lifecycle, Maven's help, make: ***):
    kept at most once, and only beside lines that earned their place."""
    return _WRAPPER.search(line[:SCAN]) is not None


def noise(line: str) -> bool:
    return progress(line) or boilerplate(line)


def frame(line: str) -> bool:
    """A stack frame or a traceback's location line."""
    return _FRAME.search(line[:SCAN]) is not None


@functools.lru_cache(maxsize=1 << 16)
def signal(line: str) -> float:
    """How strongly the line says what went wrong: 0 for nothing, about 3 for an error line."""
    text = line[:SCAN].strip()
    low = text.lower()
    anchored = _LOCATED.match(text) is not None
    if not anchored and _ANY_GATE.search(low) is None:
        return 0.0  # most lines: one scan, no word of any signal
    if (
        noise(line)
        or _RULE.match(text)
        or (_SUCCESS_END.search(text[-80:]) or _SUCCESS_START.search(text))
    ):
        return 0.0
    if _CHATTER.search(text) is not None:
        return 0.0
    if _WARNING.search(text) is not None and _STRONG.search(text) is None:
        return _WARNED
    if _NONE_GATE.search(low) and _NONE.search(text):
        text = _NONE.sub(" ", text)
        low = text.lower()
    tagged = _ERROR_TAG.match(text)
    if tagged:
        # A tool's `[error]` level alone says little (sbt's `[error] Total time: 16 s`): what
        # follows it decides, the tag adds to it.
        return _TAG_WEIGHT + _weight(text[tagged.end() :])
    return _weight(text)


def _weight(text: str) -> float:
    low = text.lower()
    for (pattern, weight, _), gate in zip(_SIGNALS, _GATES, strict=True):
        if gate.search(low) and pattern.search(text):  # heaviest first: the first is the weight
            return weight
    return 0.0


_VOLATILE = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"  # uuid
    r"|0x[0-9a-f]+|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}\b"  # addresses, hashes
    r"|(?:/tmp|/var/folders|/private/var|C:\\Users\\[^\\]+\\AppData\\Local\\Temp)[^\s:'\"]*"
    r"|\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?Z?|\b\d\d:\d\d:\d\d(?:[.,]\d+)?"
    r"|\d+(?:\.\d+)?\s?(?:ms|s|sec|seconds?|m|min|minutes?)\b|\d+",
    re.IGNORECASE,
)


def shape(line: str) -> str:
    """The line with what changes between runs (times, durations, ids, temp paths, addresses,
    numbers) masked: equal for the same line of two runs of one failure."""
    return " ".join(_VOLATILE.sub("#", line.lower()).split())
