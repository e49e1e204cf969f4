"""The Messages stand-in's script: the turns it answers with, in order, from code or a file."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Turn:
    """One scripted answer: content blocks and a stop reason, or an error status."""

    content: tuple[dict[str, Any], ...] = ()
    stop_reason: str = "end_turn"
    error_status: int | None = None
    retry_after: float | None = None

    @classmethod
    def text(cls, text: str, *, stop_reason: str = "end_turn") -> Turn:
        """A text answer; `stop_reason="max_tokens"` scripts a truncated one."""
        return cls(({"type": "text", "text": text},), stop_reason)

    @classmethod
    def tool_use(cls, name: str, tool_input: dict[str, Any], *, text: str | None = None) -> Turn:
        return cls.tool_uses([(name, tool_input)], text=text)

    @classmethod
    def tool_uses(
        cls, calls: Sequence[tuple[str, dict[str, Any]]], *, text: str | None = None
    ) -> Turn:
        """Several tool calls in one answer (parallel tool use), each with a fresh id."""
        blocks: list[dict[str, Any]] = []
        if text:
            blocks.append({"type": "text", "text": text})
        for name, tool_input in calls:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{uuid.uuid4().hex[:24]}",
                    "name": name,
                    "input": tool_input,
                }
            )
        return cls(tuple(blocks), "tool_use")

    @classmethod
    def error(cls, status: int, *, retry_after: float | None = None) -> Turn:
        """An error answer; a 429 carries `retry-after` (0 unless given, so retries are fast)."""
        if status == 429 and retry_after is None:
            retry_after = 0
        return cls((), "", status, retry_after)


Script = Turn | Callable[[dict[str, Any]], Turn]


def script_from_file(path: str) -> list[Turn]:
    """Turns from a JSON file: each {"text": T} or {"tool": NAME, "input": {...}, "text": T?}."""
    entries = json.loads(Path(path).read_text())
    if not isinstance(entries, list):
        raise SystemExit(f"{path}: a script is a JSON list of turns")
    turns = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise SystemExit(f"{path}: turn {number} is not an object")
        if "tool" in entry:
            turns.append(
                Turn.tool_use(
                    str(entry["tool"]), dict(entry.get("input") or {}), text=entry.get("text")
                )
            )
        elif "text" in entry:
            turns.append(Turn.text(str(entry["text"])))
        else:
            raise SystemExit(f"{path}: turn {number} has neither text nor tool")
    return turns
