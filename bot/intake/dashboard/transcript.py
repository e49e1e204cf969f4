"""A run's transcript (JSON Lines the agent loop writes) as the dashboard shows it: each model
turn and each tool call with its output, oldest first. Pure, and tolerant: a line that is not
an event is skipped, and the file is read up to a size cap."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_BYTES = 4 * 1024 * 1024
TITLE_CHARS = 120


@dataclass(frozen=True)
class Turn:
    kind: str  # model | tool | end
    title: str
    body: str


def _short(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


def _model_turn(number: int, event: dict[str, Any]) -> Turn:
    texts, calls = [], []
    for block in event.get("content") or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
        elif block.get("type") == "tool_use":
            calls.append(f"{block.get('name')}: {json.dumps(block.get('input'), indent=1)}")
    headline = _short(texts[0]) if texts else ", ".join(c.split(":", 1)[0] for c in calls)
    usage = event.get("usage") or {}
    title = (
        f"Model turn {number}: {headline} ({usage.get('input_tokens', 0)} in, "
        f"{usage.get('output_tokens', 0)} out)"
    )
    return Turn("model", title, "\n\n".join(texts + calls))


def _tool_turn(event: dict[str, Any]) -> Turn:
    tool_input = event.get("input") or {}
    shown = tool_input.get("command") if isinstance(tool_input, dict) else None
    headline = _short(str(shown or json.dumps(tool_input)))
    marker = " (error)" if event.get("error") else ""
    return Turn("tool", f"{event.get('name')}{marker}: {headline}", str(event.get("output") or ""))


def turns(lines: list[str]) -> list[Turn]:
    found: list[Turn] = []
    number = 0
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            continue
        kind = event.get("event") or event.get("kind") or event.get("type")
        if kind == "response":
            number += 1
            found.append(_model_turn(number, event))
        elif kind == "tool":
            found.append(_tool_turn(event))
        elif kind == "end":
            found.append(Turn("end", f"End: {event.get('status')}", str(event.get("reason") or "")))
    return found


def read_turns(path: str | None) -> list[Turn]:
    if not path:
        return []
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_BYTES)
    except OSError:
        return []
    return turns(data.decode(errors="replace").splitlines())
