"""The agent loop (mini-swe-agent's shape): ask the model, run the tools it calls in the sandbox,
feed the results back, until it answers without a tool call or a limit stops it. Limits are
checked before every model call, and time and cancel also during each model call and tool run;
a run ends by an exception that becomes its status."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.agent.budget import Budget, Completed, Failed, RunEnded
from bot.agent.ledger import Ledger
from bot.agent.model import Model, Reply
from bot.agent.tools import TOOL_DEFINITIONS, Tools
from bot.agent.transcript import Transcript

EPHEMERAL = {"type": "ephemeral"}
MAX_TOKENS = 8192
# Old tool outputs and large old tool inputs are trimmed when the conversation passes this many
# characters; trimming happens in one go down to half, and only before a cut that moves in
# strides, so the cached prefix changes rarely, never every turn.
TRIM_AT_CHARS = 400_000
KEEP_RECENT_MESSAGES = 8
TRIM_STRIDE = 8
TRIM_INPUT_CHARS = 1_000
OUTPUT_TRIMMED = "[output trimmed]"
# The stop reasons of an answer that is finished; any other (max_tokens, refusal...) is not.
FINISHED = ("end_turn", "stop_sequence")
# A tool's command is killed by the sandbox when the run's time is up; this is how long the
# sandbox gets to report that before the loop stops waiting.
TOOL_GRACE_SECONDS = 5.0


@dataclass
class Outcome:
    status: str
    reason: str = ""
    plan: str = ""
    summary: str = ""
    steps: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)


def _size(value: Any) -> int:
    return len(json.dumps(value))


def _trim_message(message: dict[str, Any]) -> None:
    """Stub out a message's tool outputs and its tool calls' long string inputs, in place."""
    if not isinstance(message["content"], list):
        return
    for block in message["content"]:
        if block.get("type") == "tool_result" and _size(block.get("content")) > 200:
            block["content"] = OUTPUT_TRIMMED
        elif block.get("type") == "tool_use" and isinstance(block.get("input"), dict):
            block["input"] = {
                key: f"[{len(value)} characters trimmed]"
                if isinstance(value, str) and len(value) > TRIM_INPUT_CHARS
                else value
                for key, value in block["input"].items()
            }


def trim(messages: list[dict[str, Any]], limit: int | None = None) -> list[dict[str, Any]]:
    """Trim old tool outputs and inputs once the conversation is longer than `limit`, oldest
    first, down to half; the first messages (task and plan) and the recent ones stay verbatim.
    Only messages before a cut that moves in strides of TRIM_STRIDE are touched, so when the
    recent messages alone pass the limit the prefix still changes once a stride, not each turn."""
    limit = TRIM_AT_CHARS if limit is None else limit
    size = _size(messages)
    if size <= limit:
        return messages
    cut = (len(messages) - KEEP_RECENT_MESSAGES) // TRIM_STRIDE * TRIM_STRIDE
    trimmed = copy.deepcopy(messages)
    for message in trimmed[2:cut]:
        before = _size(message)
        _trim_message(message)
        size -= before - _size(message)
        if size <= limit // 2:
            break
    return trimmed


def with_breakpoints(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy whose last block carries the one moving cache breakpoint (the system prompt has
    the other), so each turn reads everything before it from the cache."""
    prepared = copy.deepcopy(messages)
    for message in prepared:
        if isinstance(message["content"], list):
            for block in message["content"]:
                block.pop("cache_control", None)
    last = prepared[-1]
    if isinstance(last["content"], str):
        last["content"] = [{"type": "text", "text": last["content"]}]
    last["content"][-1]["cache_control"] = EPHEMERAL
    return prepared


def _unfinished(stop_reason: str) -> str:
    if stop_reason == "max_tokens":
        return f"the model's answer was cut at max_tokens ({MAX_TOKENS}) before it finished"
    if stop_reason == "refusal":
        return "the model refused to continue (stop_reason refusal)"
    return f"the model stopped without finishing (stop_reason {stop_reason})"


@dataclass
class Conversation:
    """One run's state as the steps pass it along."""

    system: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    outcome: Outcome
    plan_only: bool
    sent: int = 0  # messages already in the transcript


GO_AHEAD = "Go ahead: carry out the plan."


class Agent:
    """`run` -> `step` -> `query` (limits checked before every model call) -> `execute_actions`,
    as mini-swe-agent's loop; `Completed`/`Failed`/the budget's limits end a run."""

    def __init__(
        self,
        model: Model,
        tools: Tools,
        budget: Budget,
        *,
        transcript: Transcript | None = None,
        on_call: Callable[[int, Reply], None] | None = None,
        caching: bool = True,
    ) -> None:
        self.model = model
        self.tools = tools
        self.budget = budget
        self.ledger = Ledger(model.name)
        self.transcript = transcript or Transcript(None)
        self.on_call = on_call
        self.caching = caching

    async def run(self, system: str, task: str, *, plan_only: bool = False) -> Outcome:
        """Steps until the run ends; its end (or an error) becomes the outcome's status."""
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": [{"type": "text", "text": task}]}
        ]
        outcome = Outcome(status="failed")
        try:
            state = self.start(system, messages, outcome, plan_only)
            while True:
                await self.step(state)
        except RunEnded as end:
            outcome.status, outcome.reason = end.status, end.reason
        except Exception as exc:  # the model API gave up after its retries, or a bug
            outcome.status, outcome.reason = "failed", f"{type(exc).__name__}: {exc}"
        outcome.messages = messages
        self.transcript.write(
            "end", status=outcome.status, reason=outcome.reason, steps=outcome.steps
        )
        return outcome

    def start(
        self, system: str, messages: list[dict[str, Any]], outcome: Outcome, plan_only: bool
    ) -> Conversation:
        system_blocks: list[dict[str, Any]] = [{"type": "text", "text": system}]
        if self.caching:
            system_blocks[0]["cache_control"] = EPHEMERAL
        self.transcript.write(
            "start", model=self.model.name, system=system, task=messages[0]["content"][0]["text"]
        )
        return Conversation(system_blocks, messages, outcome, plan_only)

    async def step(self, state: Conversation) -> None:
        """One model call, and the tools it asks for; raises when the run is over."""
        reply = await self.query(state)
        calls = self.tool_calls(state, reply)
        if calls:
            results = await self.execute_actions(calls)
            state.messages.append({"role": "user", "content": results})
            state.outcome.steps += 1

    async def query(self, state: Conversation) -> Reply:
        """Check the limits, then ask the model (bounded by the time left); record the answer."""
        self.budget.check(state.outcome.steps, self.ledger.cost)
        messages = state.messages
        messages[:] = trim(messages)
        request = with_breakpoints(messages) if self.caching else messages
        self.transcript.write("request", new_messages=messages[state.sent :])
        state.sent = len(messages) + 1
        reply = await self.budget.bound(
            self.model.reply(
                system=state.system, messages=request, tools=TOOL_DEFINITIONS, max_tokens=MAX_TOKENS
            )
        )
        self.ledger.add(reply.usage, reply.duration_ms)
        if self.on_call is not None:
            self.on_call(len(self.ledger.calls), reply)
        self.transcript.write(
            "response",
            content=reply.content,
            stop_reason=reply.stop_reason,
            usage=reply.usage.as_dict(),
            ms=round(reply.duration_ms, 1),
        )
        messages.append({"role": "assistant", "content": reply.content})
        if not state.outcome.plan:
            state.outcome.plan = reply.text
        return reply

    def tool_calls(self, state: Conversation, reply: Reply) -> list[dict[str, Any]]:
        """The tools `reply` calls. A finished answer without any ends the run (`Completed`),
        except the first, the plan alone, after which the model is told to act."""
        calls = [b for b in reply.content if b.get("type") == "tool_use"]
        if not calls and reply.stop_reason not in FINISHED:
            raise Failed(_unfinished(reply.stop_reason))
        if not calls:
            if state.plan_only or len(self.ledger.calls) > 1:
                state.outcome.summary = reply.text
                raise Completed(state.outcome.summary)
            state.messages.append({"role": "user", "content": [{"type": "text", "text": GO_AHEAD}]})
        elif reply.stop_reason == "max_tokens":
            raise Failed("the model's answer was cut at max_tokens mid tool call")
        return calls

    async def execute_actions(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run each call in the sandbox, in order; the results as the model reads them."""
        return [await self.execute(call) for call in calls]

    async def execute(self, call: dict[str, Any]) -> dict[str, Any]:
        result = await self.budget.bound(
            self.tools.run(call["name"], call.get("input"), time_left=self.budget.remaining()),
            grace=TOOL_GRACE_SECONDS,
        )
        self.transcript.write(
            "tool",
            name=call["name"],
            input=call.get("input"),
            output=result.text(),
            error=result.is_error,
        )
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": call["id"],
            "content": result.text() or "(no output)",
        }
        if result.is_error:
            block["is_error"] = True
        return block
