"""`shipmate eval` on the example task set (QuixBugs, MIT): the gold oracle resolves every task,
the empty oracle none; a run against the Messages stand-in is recorded and replays offline to
the same results. Tasks go through the real run path: checkout, bubblewrap sandbox, agent loop,
review, commit; grading runs the task's tests in a fresh sandbox."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.evaluation.grade import judge, outcomes_from_summary
from bot.evaluation.tasks import TaskFileError, load_tasks, parse_tasks
from standins.anthropic import MessagesStandIn, Turn

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "eval" / "quixbugs" / "tasks.jsonl"
needs_sandbox = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")


def shipmate_eval(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[dict, str]:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "eval", *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={"PATH": "/usr/bin:/bin", "SHIPMATE_DATA_DIR": str(tmp_path / "data"), **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def subset(tmp_path: Path, count: int) -> Path:
    """The first `count` example tasks, in a file beside a copy of the bundle."""
    lines = EXAMPLE.read_text().splitlines()[:count]
    shutil.copy(EXAMPLE.parent / "quixbugs.bundle", tmp_path / "quixbugs.bundle")
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_example_set_is_real_quixbugs_with_its_license() -> None:
    tasks = load_tasks(EXAMPLE)
    assert len(tasks) == 12
    assert "James Koppel" in (EXAMPLE.parent / "LICENSE-QuixBugs.txt").read_text()
    for task in tasks:
        assert task.fail_to_pass and task.patch.startswith("diff --git")
        assert task.test_patch.startswith("diff --git") and Path(task.repo).is_file()
        assert not set(task.fail_to_pass) & set(task.pass_to_pass)


def test_a_bad_task_file_names_the_line_and_field(tmp_path: Path) -> None:
    good = EXAMPLE.read_text().splitlines()[0]
    with pytest.raises(TaskFileError, match=r"t:2: not JSON"):
        parse_tasks(good + "\n{oops\n", tmp_path, "t")
    broken = json.loads(good)
    del broken["base_commit"]
    with pytest.raises(TaskFileError, match=r"t:1: base_commit is missing"):
        parse_tasks(json.dumps(broken), tmp_path, "t")
    broken = {**json.loads(good), "FAIL_TO_PASS": "[1, 2]"}
    with pytest.raises(TaskFileError, match="list of test ids"):
        parse_tasks(json.dumps(broken), tmp_path, "t")
    with pytest.raises(TaskFileError, match="appears twice"):
        parse_tasks(good + "\n" + good, tmp_path, "t")
    # SWE-bench's own files carry the lists as JSON text: accepted.
    swe = {**json.loads(good), "FAIL_TO_PASS": json.dumps(["a::b"])}
    assert parse_tasks(json.dumps(swe), tmp_path, "t")[0].fail_to_pass == ("a::b",)


def test_grading_needs_every_fail_to_pass_and_every_pass_to_pass() -> None:
    task = load_tasks(EXAMPLE)[0]
    everything = set(task.fail_to_pass) | set(task.pass_to_pass)
    assert judge(task, everything).resolved
    assert not judge(task, everything - {task.fail_to_pass[0]}).resolved
    if task.pass_to_pass:
        broke = judge(task, everything - {task.pass_to_pass[0]})
        assert not broke.resolved and task.pass_to_pass[0] in broke.failed
    summary = "PASSED t.py::a\nFAILED t.py::b - assert 1 == 2\nERROR t.py::c\n"
    assert outcomes_from_summary(summary) == {"t.py::a": True, "t.py::b": False, "t.py::c": False}
    assert outcomes_from_summary("Ran 3 tests\nOK\n") is None


@needs_sandbox
def test_eval_with_the_gold_oracle_resolves_every_task(tmp_path: Path) -> None:
    totals, table = shipmate_eval(
        tmp_path, "--tasks", str(EXAMPLE), "--oracle", "gold", "--workers", "2"
    )
    assert totals["tasks"] == 12 and totals["resolved"] == 12 and totals["resolved_rate"] == 1.0
    assert totals["cost_usd"] == 0.0 and totals["wall_s"] > 0
    assert table.count(" yes ") == 12


@needs_sandbox
def test_eval_with_the_empty_oracle_resolves_none(tmp_path: Path) -> None:
    totals, table = shipmate_eval(
        tmp_path, "--tasks", str(subset(tmp_path, 4)), "--oracle", "empty"
    )
    assert (totals["tasks"], totals["resolved"], totals["resolved_rate"]) == (4, 0, 0.0)
    assert table.count(" no ") == 4


def fix_gcd_turns() -> list[Turn]:
    fixed = "def gcd(a, b):\n    if b == 0:\n        return a\n    else:\n        return gcd(b, a % b)\n"
    return [
        Turn.text("1. Read gcd. 2. Swap the recursive call's arguments."),
        Turn.tool_use(
            "str_replace_based_edit_tool",
            {"command": "create", "path": "python_programs/gcd.py", "file_text": fixed},
        ),
        Turn.text("Fixed gcd: the recursion passes (b, a % b)."),
    ]


def eval_live(
    tmp_path: Path, tasks: Path, record: Path, *flags: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An eval against the model stand-in (the gcd fix scripted), its answers recorded in
    `record`: its summary and the requests the model got."""
    with MessagesStandIn(min_cache_tokens=128) as model:
        model.script(fix_gcd_turns())
        live, _ = shipmate_eval(
            tmp_path,
            *flags,
            "--tasks",
            str(tasks),
            "--record",
            str(record),
            env={"ANTHROPIC_BASE_URL": model.url, "ANTHROPIC_API_KEY": "test-key"},
        )
        assert not model.failures
        return live, list(model.requests)


def eval_replayed(tmp_path: Path, tasks: Path, record: Path, *flags: str) -> dict[str, Any]:
    """The same eval from `record` with no model at all (ANTHROPIC_BASE_URL points nowhere),
    recorded again under tmp_path/again."""
    replayed, _ = shipmate_eval(
        tmp_path,
        *flags,
        "--tasks",
        str(tasks),
        "--replay",
        str(record),
        "--record",
        str(tmp_path / "again"),
        env={"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "ANTHROPIC_API_KEY": "none"},
    )
    return replayed


@needs_sandbox
def test_a_recorded_eval_replays_offline_to_the_same_results(tmp_path: Path) -> None:
    tasks = subset(tmp_path, 1)  # quixbugs__gcd
    record = tmp_path / "answers"
    live, requests = eval_live(tmp_path, tasks, record)
    asked = len(requests)
    assert live["resolved"] == 1 and live["cost_usd"] > 0
    recorded = (record / "quixbugs__gcd.jsonl").read_text().splitlines()
    assert len(recorded) == asked == 3
    replayed = eval_replayed(tmp_path, tasks, record)
    assert {k: replayed[k] for k in ("tasks", "resolved", "cost_usd")} == {
        k: live[k] for k in ("tasks", "resolved", "cost_usd")
    }
    rows = json.loads((tmp_path / "again" / "results.json").read_text())["tasks"]
    assert rows[0]["steps"] == 1 and rows[0]["resolved"]


@needs_sandbox
def test_a_replay_that_diverges_from_its_recording_fails_the_task(tmp_path: Path) -> None:
    tasks = subset(tmp_path, 1)
    record = tmp_path / "answers"
    record.mkdir()
    (record / "quixbugs__gcd.jsonl").write_text(
        json.dumps(
            {
                "messages": 99,
                "content": [{"type": "text", "text": "x"}],
                "stop_reason": "end_turn",
                "usage": {},
                "duration_ms": 0,
            }
        )
        + "\n"
    )
    totals, table = shipmate_eval(tmp_path, "--tasks", str(tasks), "--replay", str(record))
    assert totals["resolved"] == 0
    assert "failed" in table
