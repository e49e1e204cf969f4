"""Flaky or broken, on real logs of the corpus and on the other signs (same commit passed, the
run's conclusion, the PR's files)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bot.triggers.ci_log import excerpt
from bot.triggers.ci_verdict import classify, named_files, related

CORPUS = Path(__file__).parent / "fixtures" / "ci-logs-real"


def real(name: str) -> list[str]:
    log = gzip.decompress((CORPUS / f"{name}.log.gz").read_bytes()).decode()
    return excerpt(log).text.splitlines()


@pytest.mark.parametrize(
    "name",
    [
        "cidiff-spork-441",  # git clone: the requested URL returned error: 503
        "cidiff-sorald-445",  # No space left on device
        "cidiff-mimecraft-2316",  # the artifact repository answered 503
        "logchunks-python-vinta-awesome-python-125301582",  # a link checker's connection timed out
    ],
)
def test_network_and_runner_failures_are_flaky(name: str) -> None:
    verdict = classify(real(name))
    assert verdict.flaky, verdict.reason
    assert "network or the runner" in verdict.reason


@pytest.mark.parametrize(
    "name",
    [
        "logchunks-python-nvbn-thefuck-530361507",  # an assertion
        "cidiff-astor-400",  # javac: cannot find symbol
        "logchunks-rust-jwilm-alacritty-579346432",  # a test panicked
        "logchunks-erlang-processone-ejabberd-555702367",  # "Timed out" only in [info] chatter
    ],
)
def test_code_failures_are_broken(name: str) -> None:
    assert classify(real(name)).kind == "broken"


def test_the_whole_corpus_is_mostly_broken() -> None:
    """Real breakages are mostly the code's: on the lines that explain each of the corpus's
    failures, a verdict that would re-run many of them is wrong."""
    labels = json.loads((CORPUS / "labels.json").read_text())
    flaky = []
    for name, entry in labels.items():
        lines = gzip.decompress((CORPUS / f"{name}.log.gz").read_bytes()).decode().splitlines()
        failure = [lines[i] for a, b in entry["failure_lines"] for i in range(a - 1, b)]
        if classify(failure).flaky:
            flaky.append(name)
    assert len(flaky) <= len(labels) // 15, flaky


def test_a_pass_on_the_same_commit_makes_any_failure_flaky() -> None:
    verdict = classify(["E   assert 1 == 2"], passed_on_same_commit=True)
    assert verdict.flaky and "passed on this commit" in verdict.reason


def test_a_cancelled_run_is_flaky_unless_a_test_said_why() -> None:
    assert classify(["The operation was canceled."], conclusion="cancelled").flaky
    assert classify(["Error: Process completed with exit code 143."], conclusion="timed_out").flaky
    assert not classify(["--- FAIL: TestParse (0.01s)"], conclusion="timed_out").flaky


def test_a_network_word_inside_a_test_failure_does_not_excuse_it() -> None:
    # An attacker (or a test) can print ECONNRESET; an assertion beside it is still the code's.
    lines = ["FAIL: test_retry (tests.test_http.T)", "AssertionError: ECONNRESET != 'ok'"]
    assert classify(lines).kind == "broken"


def test_unrelated_files_are_flaky_related_ones_broken() -> None:
    failure = ["Error: ENOENT while reading vendor/cache/index.json"]
    assert classify(failure, changed_files=["src/calc.py"]).flaky
    assert not classify(failure, changed_files=["vendor/cache/index.json"]).flaky
    # Without the PR's files, or without a file named, nothing is excused.
    assert not classify(failure).flaky
    assert not classify(["Error: exit 1"], changed_files=["src/calc.py"]).flaky


def test_a_test_of_a_changed_module_is_related() -> None:
    names = named_files(["tests/test_calc.py:12: in test_add"])
    assert names == {"tests/test_calc.py"}
    assert related(names, ["calc.py"]) and related(names, ["tests/conftest.py"])
    assert not related(names, ["docs/index.md"])
