"""The excerpt's structure and vocabulary, each rule on a small log of its own: which step
failed, what a line says, what the budget buys; and, on a sample of the real corpus, that the
labelled failure stays within the budget."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from bot.triggers.ci_log import BUDGET_TOKENS, approx_tokens, excerpt, normalize
from bot.triggers.ci_select import Selection, render
from bot.triggers.ci_signals import progress, signal
from bot.triggers.ci_steps import failing_step

CORPUS = Path(__file__).parent / "fixtures" / "ci-logs-real"
LABELS: dict[str, dict[str, object]] = json.loads((CORPUS / "labels.json").read_text())


def noise_lines(count: int) -> list[str]:
    return [f"ok  \tgithub.com/acme/app/pkg{i}\t0.{i % 10}1s" for i in range(count)]


def test_a_travis_step_is_the_command_its_exit_line_names() -> None:
    """Travis says which command failed, over several lines when the command has them; the
    `$ …` lines its tools echo inside (yarn's) do not start a step."""
    log = [
        "$ npm ci",
        *noise_lines(200),
        'The command "npm ci" exited with 0.',
        '$ bash -c "',
        "  yarn lint && yarn test",
        '"',
        "yarn run v1.3.2",
        "$ prettier --list-different 'src/**/*.js'",
        "src/routes/about.js",
        "error Command failed with exit code 1.",
        "info Visit https://yarnpkg.com/en/docs/cli/run for documentation about this command.",
        *[f"$ eslint src/part{i}\nDone in 0.{i}s." for i in range(12)],
        'The command "bash -c "',
        "  yarn lint && yarn test",
        '"',
        '" exited with 1.',
        "Done. Your build exited with 1.",
    ]
    lines = normalize("\n".join(log))
    start, end = failing_step(lines)
    assert (lines[start], lines[end]) == ('$ bash -c "', '" exited with 1.')
    assert "src/routes/about.js" in excerpt("\n".join(log)).text.splitlines()


def test_a_step_that_said_nothing_takes_in_the_steps_before_it() -> None:
    """GitHub Actions: the step that exited only tested what an earlier one left; the script
    it echoes between `##[group]` and `##[endgroup]` is not output."""
    script = [f"  echo line {i} of a long script" for i in range(20)]
    log = [
        "##[group]Run go test ./...",
        *noise_lines(400),
        "##[group]Run git describe --tags",
        "git describe --tags",
        "##[endgroup]",
        "fatal: No tags can describe '60a189413d732eccd0158591618422c7cad1aed7'.",
        "Try --always, or create some tags.",
        "##[group]Run VERSION=$(cat version)",
        *script,
        "##[endgroup]",
        "Building the CLI",
        '##[group]Run [ -n "" ]',
        '[ -n "" ]',
        "shell: /usr/bin/bash -e {0}",
        "##[endgroup]",
        "##[error]Process completed with exit code 1.",
        "Post job cleanup.",
    ]
    lines = normalize("\n".join(log))
    start, end = failing_step(lines)
    assert lines[start] == "##[group]Run git describe --tags"
    assert lines[end] == "##[error]Process completed with exit code 1."
    assert "fatal: No tags can describe" in excerpt("\n".join(log)).text


@pytest.mark.parametrize(
    "line",
    [
        "[+] - error in one container during Run phase does not prevent the next container",
        "io.reactivex.subscribers.SafeSubscriberWithPluginTest > pluginException SKIPPED",
        "float_SUITE.erl:65: Warning: this expression will fail with a 'badarith' exception",
        "- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -",
        "22:07:30.259 [main] DEBUG org.springframework.Listener - failed to inject, retrying",
        "passed 83, failed 0, total 83",
        "XFAIL tests/test_io.py::test_windows_paths - known bug on this platform",
        "SKIP Bug #72035 php-cgi.exe fails to run scripts [bug72035.phpt] reason: windows only",
    ],
)
def test_lines_that_say_nothing_failed_weigh_little(line: str) -> None:
    """A passed or skipped test, a warning, a rule, a DEBUG record: whatever words they hold."""
    assert signal(line) <= 0.5


@pytest.mark.parametrize(
    ("stronger", "weaker"),
    [
        ("[error] Failed tests:", "[error] Total time: 16 s, completed Aug 17, 2019"),
        ("java.lang.NullPointerException", "[info] - client rejects headers with an exception"),
        ("[info] - dropped requests count *** FAILED ***", "[info] - Tests: failed 0"),
        ("error: cannot find symbol", "-sasl errlog_type error -pz /usr/lib/erlang"),
    ],
)
def test_how_a_failure_is_said_weighs_more_than_its_words(stronger: str, weaker: str) -> None:
    assert signal(stronger) > signal(weaker)


def test_a_file_named_like_a_progress_word_is_no_progress() -> None:
    line = "    downloader_test.go:679: failed to synchronise blocks: hash chain is invalid"
    assert not progress(line) and signal(line) >= 2.5
    assert progress("Downloading https://repo1.maven.org/x.jar") and progress("  Installing x")


def test_the_summary_names_the_failure_to_show() -> None:
    """php's run-tests: the failing test's report sits among thousands of test lines, many of
    them naming failures that are expected or skipped; the summary at the end names it."""
    log = [f"TEST {i}/3000 [2/2 concurrent test workers running]" for i in range(1500)]
    log += [
        "========DIFF========",
        "001+ ** ERROR: process timed out **",
        "001- OK.",
        "========DONE========",
        "FAIL Bug #60120 (proc_open hangs on large output) [ext/standard/tests/file/bug60120.phpt]",
    ]
    for i in range(1500):
        log.append(f"TEST {1500 + i}/3000 [2/2 concurrent test workers running]")
        if i % 20 == 0:
            log.append(f"Bug #{i} (fails on a read-only disk) [ext/x/tests/bug{i}.phpt] XFAIL")
            log.append(f"(1.{i} s) Test {i} returns false on failure [ext/y/tests/t{i}.phpt]")
    log += [
        "=" * 69,
        "FAILED TEST SUMMARY",
        "-" * 69,
        "Bug #60120 (proc_open hangs on large output) [ext/standard/tests/file/bug60120.phpt]",
        "=" * 69,
        'The command "sapi/cli/php run-tests.php" exited with 1.',
    ]
    text = excerpt("\n".join(log)).text
    assert "FAIL Bug #60120 (proc_open hangs on large output)" in text
    assert "001+ ** ERROR: process timed out **" in text


def test_the_selection_knows_what_its_rendering_costs() -> None:
    """Kept lines and the `… N lines cut …` lines between them, to the token: the budget is
    spent exactly, never overspent."""
    lines = normalize(gzip.decompress((CORPUS / "cidiff-astor-400.log.gz").read_bytes()).decode())
    rng = random.Random(3)
    for budget in (60, 300, 1000):
        selection = Selection(lines, budget)
        for _ in range(40):
            at = rng.randrange(len(lines))
            selection.add(range(at, min(len(lines), at + rng.randrange(1, 9))), partial=True)
            assert selection.spent == approx_tokens(render(lines, selection.kept)) <= budget


def test_on_the_real_corpus_the_failure_stays_within_the_budget() -> None:
    """A quarter of the corpus (both splits): the labelled lines are kept in at least 90 % of
    the logs, and no excerpt is over the budget."""
    kept = 0
    names = sorted(LABELS)[::4]
    for name in names:
        log = gzip.decompress((CORPUS / f"{name}.log.gz").read_bytes()).decode()
        lines = normalize(log)
        ranges: list[list[int]] = LABELS[name]["failure_lines"]  # type: ignore[assignment]
        wanted = [i for a, b in ranges for i in range(a - 1, b) if lines[i].strip()]
        result = excerpt(log)
        assert approx_tokens(result.text) <= BUDGET_TOKENS, name
        kept += all(i in set(result.kept) for i in wanted)
    assert kept >= 0.9 * len(names), (kept, len(names))
