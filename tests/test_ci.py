from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.triggers.ci_log import approx_tokens, excerpt, fingerprint, normalize

LOGS = Path(__file__).parent / "fixtures" / "ci-logs"
EXPECTED: dict[str, list[str]] = json.loads((LOGS / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_excerpt_keeps_the_failure_of_every_fixture(name: str) -> None:
    log = (LOGS / f"{name}.log").read_text()
    result = excerpt(log)
    for line in EXPECTED[name]:
        assert line in result.text, f"{name}: lost {line!r}"
    assert approx_tokens(result.text) < approx_tokens(log) / 4


def test_fixtures_are_enough_and_varied() -> None:
    assert len(EXPECTED) >= 20
    prefixes = {name.split("-")[0] for name in EXPECTED}
    assert {"pytest", "unittest", "jest", "go", "cargo", "mypy", "tsc", "gcc"} <= prefixes


def test_total_reduction_is_at_least_85_percent() -> None:
    raw = cut = 0
    for name in EXPECTED:
        log = (LOGS / f"{name}.log").read_text()
        raw += approx_tokens(log)
        cut += approx_tokens(excerpt(log).text)
    assert 1 - cut / raw >= 0.85


def test_cut_places_are_marked() -> None:
    log = "\n".join(
        [f"setup line {i}" for i in range(50)]
        + ["E       AssertionError: assert 1 == 2"]
        + [f"tail {i}" for i in range(30)]
    )
    result = excerpt(log)
    shown = cut = 0
    for line in result.text.splitlines():
        if line.startswith("… ") and line.endswith(" cut …"):
            cut += int(line.split()[1])
        else:
            shown += 1
    assert "E       AssertionError: assert 1 == 2" in result.text
    assert cut > 0 and shown == result.kept_lines and shown + cut == result.total_lines == 81


def test_normalize_drops_timestamps_and_colours_one_line_for_each() -> None:
    # Group markers stay: they say where a step begins, and line i stays line i of the log.
    log = (
        "2026-11-20T14:02:11.1234567Z ##[group]Run pytest\n"
        "2026-11-20T14:02:11.2234567Z \x1b[31mFAILED\x1b[0m x\n"
    )
    assert normalize(log) == ["##[group]Run pytest", "FAILED x"]


def test_unrecognised_log_keeps_its_tail() -> None:
    log = "\n".join(f"line {i}" for i in range(100))
    result = excerpt(log)
    assert "line 99" in result.text and "line 10\n" not in result.text
    assert result.first_error == "line 99"


def test_budget_keeps_the_assertion_over_the_noise() -> None:
    log = "\n".join(
        [f"src/x.py:{i}: in f" for i in range(300)] + ["E       AssertionError: the one"]
    )
    result = excerpt(log, budget=100)
    assert "E       AssertionError: the one" in result.text
    assert approx_tokens(result.text) <= 100


def test_first_error_prefers_the_error_itself() -> None:
    log = (LOGS / "pytest-attributeerror.log").read_text()
    assert (
        excerpt(log).first_error == "E       AttributeError: 'Row' object has no attribute 'price'"
    )


def test_a_long_diff_does_not_crowd_out_the_assertion() -> None:
    log = "\n".join(
        [">       assert export_all() == snapshot"]
        + [f"E           {{'id': {i}}}," for i in range(400)]
        + ["tests/test_export.py:12: AssertionError"]
    )
    text = excerpt(log, budget=400).text
    assert ">       assert export_all() == snapshot" in text
    assert "tests/test_export.py:12: AssertionError" in text
    # Its head and the step's last lines are kept; the middle of the diff is not.
    assert "{'id': 0}" in text and "{'id': 200}" not in text
    assert approx_tokens(text) <= 400


def test_fingerprint_ignores_volatile_parts() -> None:
    a = fingerprint("test (3.12)", "E  AssertionError: assert 3 == 4 at 0x7f3c2a1b9d90")
    b = fingerprint("test (3.12)", "E  AssertionError: assert 5 == 9 at 0x7f00000000ff")
    c = fingerprint("lint", "E  AssertionError: assert 3 == 4 at 0x7f3c2a1b9d90")
    d = fingerprint("test (3.12)", "E  KeyError: 'price'")
    assert a == b
    assert a != c and a != d
