"""The agent loop in-process (mini-swe-agent's tests): a scripted `Model` and a fake sandbox that
records each command, so every step — query, limits, tool calls, the end — is seen without a
socket or a real sandbox. tests/test_agent.py drives the same loop over both."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.agent.budget import Budget
from bot.agent.ledger import Usage
from bot.agent.loop import GO_AHEAD, Agent, Outcome
from bot.agent.model import Reply
from bot.agent.tools import Tools
from bot.sandbox.base import ExecResult

MODEL = "claude-sonnet-4-6"


def text(answer: str, stop_reason: str = "end_turn") -> Reply:
    return Reply([{"type": "text", "text": answer}], stop_reason, Usage(100, 10), 1.0)


def bash(command: str, call_id: str = "t1", stop_reason: str = "tool_use") -> Reply:
    block = {"type": "tool_use", "id": call_id, "name": "bash", "input": {"command": command}}
    return Reply([block], stop_reason, Usage(100, 10), 1.0)


class ScriptedModel:
    """Answers from a script, one per call; records what each request held."""

    name = MODEL

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[list[dict[str, Any]]] = []
        self.tools_offered: list[list[str]] = []

    async def reply(
        self,
        *,
        system: list[dict[str, Any]],
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        max_tokens: int,
    ) -> Reply:
        self.requests.append(copy.deepcopy(messages))  # the loop goes on with the list
        self.tools_offered.append([t["name"] for t in tools])
        if not self.replies:
            raise AssertionError("the script is over: the loop asked once too often")
        return self.replies.pop(0)


class FakeSandbox:
    """Records the commands; answers each with `output` (exit 0)."""

    def __init__(self, workspace: Path, output: bytes = b"ok\n") -> None:
        self._workspace = workspace
        self.output = output
        self.commands: list[Sequence[str]] = []

    @property
    def workspace(self) -> Path:
        return self._workspace

    async def exec(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout_seconds: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        self.commands.append(list(argv))
        return ExecResult(0, self.output, b"")

    async def close(self) -> None:
        return None


def _run(
    model: ScriptedModel,
    sandbox: FakeSandbox,
    *,
    max_steps: int = 10,
    max_cost: float = 5.0,
    plan_only: bool = False,
    known: Sequence[str] = (),
) -> Outcome:
    agent = Agent(
        model, Tools(sandbox, known_secrets=known), Budget(max_steps, max_cost, 60.0), caching=False
    )
    return asyncio.run(agent.run("system", "fix the test", plan_only=plan_only))


@pytest.fixture
def sandbox(tmp_path: Path) -> FakeSandbox:
    return FakeSandbox(tmp_path)


def test_plan_then_tools_then_a_summary_completes(sandbox: FakeSandbox) -> None:
    model = ScriptedModel(text("1. run the tests"), bash("pytest -q"), text("Fixed the sign."))
    outcome = _run(model, sandbox)
    assert (outcome.status, outcome.plan, outcome.summary) == (
        "completed",
        "1. run the tests",
        "Fixed the sign.",
    )
    assert outcome.steps == 1
    assert sandbox.commands == [["bash", "-lc", "pytest -q"]]
    # After the plan the model is told to act; after the tool, it reads the tool's result.
    assert model.requests[1][-1]["content"][0]["text"] == GO_AHEAD
    result = model.requests[2][-1]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "t1"
    assert "ok" in result["content"]
    # Every request offers the two tools of the contract.
    assert all({"bash", "str_replace_based_edit_tool"} <= set(t) for t in model.tools_offered)


def test_a_plan_only_run_ends_at_the_plan(sandbox: FakeSandbox) -> None:
    model = ScriptedModel(text("1. change add()"))
    outcome = _run(model, sandbox, plan_only=True)
    assert (outcome.status, outcome.plan, outcome.summary) == (
        "completed",
        "1. change add()",
        "1. change add()",
    )
    assert sandbox.commands == [] and len(model.requests) == 1


def test_the_step_limit_is_checked_before_the_next_model_call(sandbox: FakeSandbox) -> None:
    model = ScriptedModel(text("plan"), bash("a", "t1"), bash("b", "t2"), bash("c", "t3"))
    outcome = _run(model, sandbox, max_steps=2)
    assert outcome.status == "step_limit" and outcome.steps == 2
    # Two tool steps ran; the third model call was never made (one answer is left over).
    assert len(model.requests) == 3 and len(model.replies) == 1
    assert [c[-1] for c in sandbox.commands] == ["a", "b"]


def test_the_cost_limit_is_checked_before_the_next_model_call(sandbox: FakeSandbox) -> None:
    costly = Reply(
        [{"type": "tool_use", "id": "t1", "name": "bash", "input": {"command": "x"}}],
        "tool_use",
        Usage(2_000_000, 0),  # $6 of input at $3/MTok
        1.0,
    )
    model = ScriptedModel(costly, text("never asked"))
    outcome = _run(model, sandbox, max_cost=5.0)
    assert outcome.status == "cost_limit"
    assert len(model.requests) == 1 and sandbox.commands == [["bash", "-lc", "x"]]


def test_an_unfinished_answer_fails_the_run(sandbox: FakeSandbox) -> None:
    outcome = _run(ScriptedModel(text("1. I will", stop_reason="max_tokens")), sandbox)
    assert outcome.status == "failed" and "max_tokens" in outcome.reason
    cut = ScriptedModel(text("plan"), bash("rm -rf /", stop_reason="max_tokens"))
    outcome = _run(cut, sandbox)
    assert outcome.status == "failed" and "mid tool call" in outcome.reason
    assert sandbox.commands == []  # a cut tool call is never run


def test_an_unknown_tool_is_an_error_the_model_reads(sandbox: FakeSandbox) -> None:
    wrong = Reply(
        [{"type": "tool_use", "id": "t9", "name": "python", "input": {"code": "1"}}],
        "tool_use",
        Usage(1, 1),
        1.0,
    )
    model = ScriptedModel(text("plan"), wrong, text("done"))
    outcome = _run(model, sandbox)
    assert outcome.status == "completed"
    result = model.requests[2][-1]["content"][0]
    assert result["is_error"] is True and "no tool named 'python'" in result["content"]


def test_a_model_error_fails_the_run_with_its_reason(sandbox: FakeSandbox) -> None:
    outcome = _run(ScriptedModel(), sandbox)  # the script is empty: the call raises
    assert outcome.status == "failed" and outcome.reason.startswith("AssertionError")


def test_tool_output_reaches_the_model_redacted(tmp_path: Path) -> None:
    secret = "hunter2-very-secret-value"
    sandbox = FakeSandbox(tmp_path, output=f"token={secret}\n".encode())
    model = ScriptedModel(text("plan"), bash("env"), text("done"))
    _run(model, sandbox, known=[secret])
    assert secret not in str(model.requests[2]) and "[REDACTED]" in str(model.requests[2])


def test_step_and_query_can_be_driven_one_at_a_time(sandbox: FakeSandbox) -> None:
    """The steps are public: a caller (or a test) can drive a run step by step."""
    model = ScriptedModel(text("plan"), bash("ls"))
    agent = Agent(model, Tools(sandbox), Budget(5, 5.0, 60.0), caching=False)
    messages = [{"role": "user", "content": [{"type": "text", "text": "task"}]}]
    state = agent.start("system", messages, Outcome("failed"), plan_only=False)

    async def two_steps() -> None:
        await agent.step(state)
        assert state.outcome.plan == "plan" and state.outcome.steps == 0
        await agent.step(state)

    asyncio.run(two_steps())
    assert state.outcome.steps == 1 and sandbox.commands == [["bash", "-lc", "ls"]]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
