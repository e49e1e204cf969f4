"""The agent loop end to end: the official SDK -> the Messages stand-in over a socket; tools in a
real bubblewrap sandbox over a cached checkout; the result committed on a shipmate/ branch."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.agent import loop
from bot.agent.budget import Caps
from bot.agent.ledger import Usage, cost_usd
from bot.agent.model import AnthropicModel
from bot.agent.prompts import Brief
from bot.db import schema
from bot.db.store import Store
from bot.runs.local_run import LocalRun, RunResult, run_local
from bot.sandbox import limits
from bot.sandbox.checkout import CheckoutCache, git
from standins.anthropic import MessagesStandIn, Turn
from tests.scripts import edit_add

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
ROOT = Path(__file__).resolve().parent.parent
PLAN = "1. Run the tests.\n2. Fix add().\n3. Run the tests again."


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "widgets"
    git("init", "-q", "-b", "main", str(path))
    (path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (path / "test_calc.py").write_text(
        "import unittest\nfrom calc import add\n\n\nclass T(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
    )
    (path / "README.md").write_text("# widgets\nRun the tests with `python3 -m unittest`.\n")
    git("add", "-A", cwd=path)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init", cwd=path)
    return path


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[MessagesStandIn]:
    # A low minimum so that this small repository's prompts are cached as a real one's are.
    with MessagesStandIn(min_cache_tokens=128) as standin:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", standin.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        yield standin


def _run(repo: Path, tmp_path: Path, store: Store | None = None, **overrides: Any) -> RunResult:
    request = LocalRun(
        repo=repo,
        brief=overrides.pop("brief", Brief(task="Fix add() so the tests pass")),
        max_steps=overrides.pop("max_steps", 10),
        max_cost_usd=overrides.pop("max_cost_usd", 5.0),
        timeout_seconds=overrides.pop("timeout_seconds", 120.0),
        transcript=tmp_path / "transcript.jsonl",
        **overrides,
    )
    import asyncio

    async def go() -> RunResult:
        model = AnthropicModel("claude-sonnet-4-6", max_retries=3)
        try:
            return await run_local(
                request, model=model, cache=CheckoutCache(tmp_path / "cache"), store=store
            )
        finally:
            await model.close()

    return asyncio.run(go())


def _commit(repo: Path, path: str, text: str) -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"edit {path}", cwd=repo)


def _cli_run(repo: Path, tmp_path: Path, *flags: str, **env: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bot.cli", "run", "--repo", str(repo), "--brief", "Fix add"]
    completed = subprocess.run(
        [*command, "--json", *flags],
        cwd=ROOT,
        env={**os.environ, "SHIPMATE_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    data: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    assert completed.returncode == (0 if data["status"] == "completed" else 1), completed.stderr
    return data


def _last_tool_result(request: dict[str, Any]) -> dict[str, Any]:
    return request["messages"][-1]["content"][-1]


def test_a_scripted_model_fixes_the_failing_test(
    repo: Path, tmp_path: Path, model: MessagesStandIn
) -> None:
    seen: dict[str, Any] = {}

    def after_first_test_run(request: dict[str, Any]) -> Turn:
        seen["first"] = _last_tool_result(request)["content"]
        return edit_add()

    def after_second_test_run(request: dict[str, Any]) -> Turn:
        seen["second"] = _last_tool_result(request)["content"]
        return Turn.text("Fixed add(): it subtracted. The unittest suite passes.")

    model.script(
        [
            Turn.text(PLAN),
            Turn.tool_use("bash", {"command": "python3 -m unittest 2>&1 | tail -3"}),
            after_first_test_run,
            Turn.tool_use("bash", {"command": "python3 -m unittest 2>&1 | tail -3"}),
            after_second_test_run,
        ]
    )
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    result = _run(repo, tmp_path, store=store)
    assert result.status == "completed", result.reason
    assert result.plan == PLAN
    assert "FAILED" in seen["first"] and "OK" in seen["second"]  # the commands really ran
    assert result.branch == "shipmate/fix-add-so-the-tests-pass"
    assert git("show", f"{result.branch}:calc.py", cwd=repo) == "def add(a, b):\n    return a + b\n"
    assert "+    return a + b" in result.diff
    # The user's working tree and branch are untouched.
    assert (repo / "calc.py").read_text().endswith("a - b\n")
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=repo).strip() == "main"
    assert result.usage.as_dict() == model.total_usage()
    assert result.steps == 3 and result.cost_usd > 0
    assert model.failures == []
    # Every request offered both tools, and the last one read its prefix from the cache.
    assert all(
        {t["name"] for t in r["tools"]} == {"bash", "str_replace_based_edit_tool"}
        for r in model.requests
    )
    run = store.get_run(result.run_id)
    assert run is not None and run["status"] == "completed" and run["branch"] == result.branch
    assert len(store.model_calls(result.run_id)) == len(model.responses)
    # What the database recorded adds up to exactly what the API reported, and to the run's cost.
    calls = schema.model_calls
    keys = list(model.total_usage())
    with store.engine.connect() as conn:
        sums = conn.execute(
            select(*(func.sum(calls.c[k]) for k in keys), func.sum(calls.c.cost_usd)).where(
                calls.c.run_id == result.run_id
            )
        ).one()
    assert dict(zip(keys, sums[:-1])) == model.total_usage()
    assert sums[-1] == pytest.approx(result.cost_usd)
    # Each request after the first read the whole previous prompt from the cache.
    usages = [r["usage"] for r in model.responses]
    assert usages[0]["cache_read_input_tokens"] == 0
    for before, usage in itertools.pairwise(usages):
        prompt = sum(before[k] for k in keys if k != "output_tokens")
        assert usage["cache_read_input_tokens"] == prompt > 0
    kinds = [
        json.loads(line)["kind"]
        for line in (tmp_path / "transcript.jsonl").read_text().splitlines()
    ]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("tool") == 3


def test_a_tool_error_is_shown_and_the_run_goes_on(
    repo: Path, tmp_path: Path, model: MessagesStandIn
) -> None:
    results: list[dict[str, Any]] = []

    def look(request: dict[str, Any]) -> Turn:
        results.append(_last_tool_result(request))
        return Turn.tool_use(
            "str_replace_based_edit_tool", {"command": "view", "path": "/etc/passwd"}
        )

    def done(request: dict[str, Any]) -> Turn:
        results.append(_last_tool_result(request))
        return Turn.text("Nothing to change.")

    model.script(
        [
            Turn.text(PLAN),
            Turn.tool_use(
                "str_replace_based_edit_tool",
                {"command": "str_replace", "path": "calc.py", "old_str": "nope", "new_str": "x"},
            ),
            look,
            done,
        ]
    )
    result = _run(repo, tmp_path)
    assert result.status == "completed" and result.branch is None and result.diff == ""
    assert result.reason == "the run made no change"
    assert results[0]["is_error"] and "did not appear verbatim" in results[0]["content"]
    assert results[1]["is_error"] and "outside /workspace" in results[1]["content"]


def test_step_limit_stops_a_run_that_would_go_on_forever(
    repo: Path, tmp_path: Path, model: MessagesStandIn
) -> None:
    model.script(
        [Turn.text(PLAN)] + [Turn.tool_use("bash", {"command": "true"}) for _ in range(10)]
    )
    result = _run(repo, tmp_path, max_steps=3)
    assert result.status == "step_limit" and result.steps == 3


def test_cost_limit_stops_a_run_that_would_go_on_forever(
    repo: Path, tmp_path: Path, model: MessagesStandIn
) -> None:
    def forever(request: dict[str, Any]) -> Turn:
        model.script([forever])  # the model never stops calling tools
        return Turn.tool_use("bash", {"command": "true"})

    model.script([Turn.text(PLAN), forever])
    limit = 0.02
    result = _run(repo, tmp_path, max_cost_usd=limit, max_steps=1000)
    assert result.status == "cost_limit" and "the limit is $0.02" in result.reason
    assert result.steps >= 3 and len(model.requests) == result.steps + 1
    costs = [cost_usd(Usage(**r["usage"]), "claude-sonnet-4-6") for r in model.responses]
    # It stopped at the first check after the limit was reached, not before, not later.
    assert sum(costs[:-1]) < limit <= sum(costs) == pytest.approx(result.cost_usd)


def test_time_limit(repo: Path, tmp_path: Path, model: MessagesStandIn) -> None:
    model.script(
        [Turn.text(PLAN)] + [Turn.tool_use("bash", {"command": "sleep 1"}) for _ in range(10)]
    )
    started = time.monotonic()
    result = _run(repo, tmp_path, timeout_seconds=2.5)
    elapsed = time.monotonic() - started
    assert result.status == "timeout" and "the limit is 2.5 s" in result.reason
    assert 2.5 <= elapsed < 6, elapsed
    assert 1 <= result.steps <= 3


def test_a_long_command_is_cut_at_the_run_timeout(
    repo: Path, tmp_path: Path, model: MessagesStandIn
) -> None:
    model.script([Turn.text(PLAN), Turn.tool_use("bash", {"command": "sleep 30"}), Turn.text("-")])
    started = time.monotonic()
    result = _run(repo, tmp_path, timeout_seconds=3)
    elapsed = time.monotonic() - started
    assert result.status == "timeout", result.reason
    assert elapsed < 6, elapsed  # not the 300 s per-command default, nor the 30 s sleep
    assert len(model.requests) == 2 and model.remaining() == 1
    tools = [
        json.loads(line)
        for line in (tmp_path / "transcript.jsonl").read_text().splitlines()
        if json.loads(line)["kind"] == "tool"
    ]
    assert tools[0]["error"] and "the run's time limit was reached" in tools[0]["output"]


def test_a_slow_model_call_is_cut_at_the_run_timeout(
    repo: Path, tmp_path: Path, model: MessagesStandIn
) -> None:
    def slow(request: dict[str, Any]) -> Turn:
        time.sleep(4)
        return Turn.text(PLAN)

    model.script([slow, Turn.text("Nothing needed.")])
    started = time.monotonic()
    result = _run(repo, tmp_path, timeout_seconds=1.5)
    elapsed = time.monotonic() - started
    assert result.status == "timeout" and result.usage.as_dict()["output_tokens"] == 0
    assert elapsed < 3.5, elapsed


def _sandboxed_sleeps() -> list[str]:
    found = subprocess.run(["pgrep", "-f", "sleep 4[12][.]75"], capture_output=True, text=True)
    return found.stdout.split()


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup", "no-cgroup"])
def test_cancel_during_a_long_command_kills_it_and_stops_the_run(
    repo: Path,
    tmp_path: Path,
    model: MessagesStandIn,
    monkeypatch: pytest.MonkeyPatch,
    cgroups: bool,
) -> None:
    if not cgroups:  # only bwrap and its PID namespace can kill the tree then
        monkeypatch.setattr(limits, "create", lambda *a, **k: limits.CgroupSet("none", ()))
    asked: dict[str, float] = {}

    def long_command(request: dict[str, Any]) -> Turn:
        asked["at"] = time.monotonic()
        return Turn.tool_use("bash", {"command": "sleep 41.75 & sleep 42.75; wait"})

    def cancelled() -> bool:
        if "at" in asked and time.monotonic() - asked["at"] > 1.0:
            asked.setdefault("running", len(_sandboxed_sleeps()))
            return True
        return False

    model.script([Turn.text(PLAN), long_command, Turn.text("-")])
    result = _run(repo, tmp_path, cancelled=cancelled)
    assert result.status == "failed" and "cancelled" in result.reason
    assert time.monotonic() - asked["at"] < 4
    assert asked["running"] >= 2  # the command was really running when the cancel came
    assert _sandboxed_sleeps() == []
    assert len(model.requests) == 2


def test_cancel_stops_a_run_midway(repo: Path, tmp_path: Path, model: MessagesStandIn) -> None:
    model.script(
        [Turn.text(PLAN)] + [Turn.tool_use("bash", {"command": "true"}) for _ in range(10)]
    )
    result = _run(repo, tmp_path, cancelled=lambda: len(model.requests) >= 3)
    assert result.status == "failed" and "cancelled" in result.reason
    assert len(model.requests) == 3


def test_429_and_529_are_retried(repo: Path, tmp_path: Path, model: MessagesStandIn) -> None:
    model.script(
        [
            Turn.error(429, retry_after=0),
            Turn.text(PLAN),
            Turn.error(529, retry_after=0),
            Turn.text("Nothing needed."),
        ]
    )
    result = _run(repo, tmp_path)
    assert result.status == "completed" and len(model.requests) == 4


def test_a_diff_with_a_secret_is_held_back(
    repo: Path, tmp_path: Path, model: MessagesStandIn
) -> None:
    token = "ghp_" + "Ab3" * 12
    model.script(
        [
            Turn.text(PLAN),
            Turn.tool_use(
                "str_replace_based_edit_tool",
                {"command": "create", "path": "settings.py", "file_text": f"TOKEN = '{token}'\n"},
            ),
            Turn.text("Added the token."),
        ]
    )
    result = _run(repo, tmp_path)
    assert result.status == "blocked" and "settings.py:1 (github-token)" in result.reason
    assert result.branch is None
    assert git("for-each-ref", "refs/heads/shipmate/", cwd=repo) == ""
    assert token not in (tmp_path / "transcript.jsonl").read_text()


def test_a_protected_path_is_held_back(repo: Path, tmp_path: Path, model: MessagesStandIn) -> None:
    model.script(
        [
            Turn.text(PLAN),
            Turn.tool_use(
                "str_replace_based_edit_tool",
                {
                    "command": "create",
                    "path": ".github/workflows/ci.yml",
                    "file_text": "on: push\n",
                },
            ),
            Turn.text("Changed CI."),
        ]
    )
    result = _run(repo, tmp_path)
    assert result.status == "blocked" and ".github/workflows/ci.yml" in result.reason


def test_shipmate_run_json_contract(repo: Path, tmp_path: Path, model: MessagesStandIn) -> None:
    model.script(
        [
            Turn.text(PLAN),
            edit_add(path="/workspace/calc.py"),
            Turn.text("Fixed."),
        ]
    )
    data = _cli_run(repo, tmp_path, "--max-steps", "5")
    assert data["status"] == "completed" and data["branch"] == "shipmate/fix-add"
    assert {"status", "branch", "diff", "steps", "usage", "cost_usd", "transcript"} <= set(data)
    assert "reason" not in data
    # The ledger's sandbox time: the tool call and the diff ran in the sandbox.
    assert data["sandbox_wall_seconds"] > 0 and data["sandbox_cpu_seconds"] >= 0
    assert set(data["usage"]) == {
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    }
    assert data["steps"] == 1 and "+    return a + b" in data["diff"]
    assert Path(data["transcript"]).exists()
    # The run's id is the one `shipmate audit` and `shipmate runs` know it by.
    run_id = data["run_id"]
    assert Path(data["transcript"]) == tmp_path / "data" / "runs" / f"{run_id}.jsonl"
    env = {**os.environ, "SHIPMATE_DATA_DIR": str(tmp_path / "data")}
    for args, shown in (
        (["audit", "--run", run_id], f"run {run_id}: completed"),
        (["runs"], f"{run_id}  "),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and shown in done.stdout, done.stdout + done.stderr


def test_run_limits_come_from_the_flag_then_the_repo_config_then_the_settings(
    repo: Path, tmp_path: Path, model: MessagesStandIn
) -> None:
    def script(tool_turns: int) -> None:
        model.script([Turn.text(PLAN)] + [Turn.tool_use("bash", {"command": "true"})] * tool_turns)

    settings = Caps(max_steps=4, max_cost_usd=5.0, timeout_seconds=120.0)
    script(4)
    result = _run(repo, tmp_path, max_steps=None, defaults=settings)
    assert result.status == "step_limit" and result.steps == 4 and model.remaining() == 0

    _commit(repo, ".github/shipmate.yml", "max_steps: 2\n")
    script(2)
    result = _run(repo, tmp_path, max_steps=None, defaults=settings)
    assert result.status == "step_limit" and result.steps == 2 and model.remaining() == 0

    script(3)
    result = _run(repo, tmp_path, max_steps=3, defaults=settings)
    assert result.status == "step_limit" and result.steps == 3 and model.remaining() == 0


def test_shipmate_run_uses_the_repo_config_over_the_settings(
    repo: Path, tmp_path: Path, model: MessagesStandIn
) -> None:
    _commit(repo, ".github/shipmate.yml", "max_steps: 1\n")
    model.script([Turn.text(PLAN), Turn.tool_use("bash", {"command": "true"})])
    data = _cli_run(repo, tmp_path, SHIPMATE_MAX_STEPS="5")
    assert data["status"] == "step_limit" and data["steps"] == 1 and model.remaining() == 0
    assert data["reason"] == "stopped after 1 steps (the limit is 1)"


def test_the_brief_names_the_test_command_without_instructions(
    repo: Path, tmp_path: Path, model: MessagesStandIn
) -> None:
    _commit(repo, ".github/shipmate.yml", "test: python3 -m unittest -q\n")
    model.script([Turn.text(PLAN), Turn.text("Nothing needed.")])
    result = _run(repo, tmp_path)
    assert result.status == "completed"
    system = model.requests[0]["system"][0]["text"]
    assert "The repository's test command: `python3 -m unittest -q`" in system
    assert "Maintainers' instructions" not in system


@pytest.mark.parametrize(
    ("stop_reason", "why"),
    [("max_tokens", "cut at max_tokens"), ("refusal", "refused"), ("pause_turn", "pause_turn")],
)
def test_an_unfinished_answer_without_a_tool_call_fails_the_run(
    repo: Path, tmp_path: Path, model: MessagesStandIn, stop_reason: str, why: str
) -> None:
    model.script(
        [
            Turn.text(PLAN),
            edit_add(),
            Turn.text("I fixed add() and the tests", stop_reason=stop_reason),
        ]
    )
    result = _run(repo, tmp_path)
    assert result.status == "failed" and why in result.reason
    assert result.branch is None and git("for-each-ref", "refs/heads/shipmate/", cwd=repo) == ""


def test_a_truncated_plan_fails_the_run(repo: Path, tmp_path: Path, model: MessagesStandIn) -> None:
    model.script([Turn.text("1. Run the", stop_reason="max_tokens"), Turn.text("-")])
    result = _run(repo, tmp_path)
    assert result.status == "failed" and "max_tokens" in result.reason
    assert len(model.requests) == 1


def test_trimming_old_turns_keeps_the_cache_warm(
    repo: Path, tmp_path: Path, model: MessagesStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "TRIM_AT_CHARS", 12_000)
    turns: list[Turn] = [Turn.text(PLAN)]
    for n in range(10):
        turns.append(
            Turn.tool_use(
                "str_replace_based_edit_tool",
                {"command": "create", "path": f"notes/n{n}.txt", "file_text": f"{n}" * 2_000},
            )
        )
        turns.append(Turn.tool_use("bash", {"command": "head -c 1500 /dev/zero | tr '\\0' x"}))
    model.script([*turns, Turn.text("Wrote the notes.")])
    result = _run(repo, tmp_path, max_steps=50)
    assert result.status == "completed", result.reason
    last = json.dumps(model.requests[-1]["messages"])
    assert "[output trimmed]" in last and "[2000 characters trimmed]" in last
    assert "x" * 1500 in last  # the recent outputs are verbatim
    usages = [r["usage"] for r in model.responses]
    prompts = [
        u["input_tokens"] + u["cache_creation_input_tokens"] + u["cache_read_input_tokens"]
        for u in usages
    ]
    # A request that does not read all of the previous prompt from cache is one whose prefix
    # trimming rewrote: that happens at most once a stride (TRIM_STRIDE messages, half as many
    # requests), not every turn; and every request reads something.
    rewritten = [
        i for i in range(1, len(usages)) if usages[i]["cache_read_input_tokens"] < prompts[i - 1]
    ]
    assert 1 <= len(rewritten) <= len(usages) // (loop.TRIM_STRIDE // 2), rewritten
    assert all(u["cache_read_input_tokens"] > 0 for u in usages[1:])
