"""Trimming old turns: outputs and large inputs are stubbed, oldest first, and the prefix the
cache holds changes rarely, never every turn."""

from __future__ import annotations

import copy
from typing import Any

from bot.agent import loop
from bot.agent.loop import OUTPUT_TRIMMED, trim


def _turn(n: int, output_chars: int, input_chars: int = 10) -> list[dict[str, Any]]:
    call = {
        "type": "tool_use",
        "id": f"t{n}",
        "name": "str_replace_based_edit_tool",
        "input": {"command": "create", "path": f"f{n}.py", "file_text": "y" * input_chars},
    }
    result = {"type": "tool_result", "tool_use_id": f"t{n}", "content": "x" * output_chars}
    return [
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [result]},
    ]


def _conversation(turns: int, output_chars: int, input_chars: int = 10) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "Task: fix it"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "1. plan"}]},
        {"role": "user", "content": [{"type": "text", "text": "Go ahead"}]},
    ]
    for n in range(turns):
        messages += _turn(n, output_chars, input_chars)
    return messages


def _trimmed(message: dict[str, Any]) -> bool:
    block = message["content"][0]
    if block["type"] == "tool_result":
        return bool(block["content"] == OUTPUT_TRIMMED)
    return "characters trimmed" in block["input"]["file_text"]


def test_a_short_conversation_is_left_alone() -> None:
    messages = _conversation(3, 100)
    assert trim(messages, limit=100_000) is messages


def test_old_outputs_and_large_old_inputs_are_trimmed_recent_ones_kept() -> None:
    messages = _conversation(12, 2_000, input_chars=3_000)
    original = copy.deepcopy(messages)
    trimmed = trim(messages, limit=20_000)
    assert messages == original  # the input is not changed in place
    assert trimmed[:3] == messages[:3]  # the task and the plan stay verbatim
    assert trimmed[-loop.KEEP_RECENT_MESSAGES :] == messages[-loop.KEEP_RECENT_MESSAGES :]
    old = trimmed[3 : -loop.KEEP_RECENT_MESSAGES]
    assert any(_trimmed(m) for m in old)
    assert _trimmed(trimmed[3]) and _trimmed(trimmed[4])  # oldest first: the create and its result
    assert trimmed[3]["content"][0]["input"]["file_text"] == "[3000 characters trimmed]"
    assert trimmed[3]["content"][0]["input"]["path"] == "f0.py"  # short inputs stay
    # Only whole strides are trimmed: the cut is at 16 of 27 messages, so the three old messages
    # after it wait for the next stride, and the prefix up to 16 is what changed.
    cut = (len(messages) - loop.KEEP_RECENT_MESSAGES) // loop.TRIM_STRIDE * loop.TRIM_STRIDE
    assert cut == 16
    assert all(_trimmed(m) for m in trimmed[3:cut])
    assert trimmed[cut:] == messages[cut:]


def test_once_everything_old_is_trimmed_the_prefix_changes_once_a_stride() -> None:
    """The recent turns alone pass the limit: every turn is over it, yet the prefix is only
    rewritten when the cut moves, once every TRIM_STRIDE messages."""
    messages = _conversation(6, 4_000)
    rewrites = 0
    for n in range(6, 30):
        messages += _turn(n, 4_000)
        before = copy.deepcopy(messages)
        messages[:] = trim(messages, limit=10_000)
        if messages[:-2] != before[:-2]:
            rewrites += 1
        assert messages[-loop.KEEP_RECENT_MESSAGES :] == before[-loop.KEEP_RECENT_MESSAGES :]
    settled = messages[3 : -loop.KEEP_RECENT_MESSAGES - loop.TRIM_STRIDE]
    assert all(_trimmed(m) for m in settled if m["role"] == "user")
    # 24 turns are 48 messages: the cut moves 48 / TRIM_STRIDE times at most.
    assert 1 <= rewrites <= 48 // loop.TRIM_STRIDE


def test_trimming_again_without_new_turns_changes_nothing() -> None:
    messages = _conversation(20, 3_000, input_chars=2_000)
    once = trim(messages, limit=30_000)
    assert once != messages and trim(once, limit=30_000) == once
