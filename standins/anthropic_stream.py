"""A Messages API answer as the server-sent events the API streams."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"


def _block_events(index: int, block: dict[str, Any]) -> Iterator[str]:
    """A content block as the API streams it: its start, its deltas in small pieces, its stop."""
    if block["type"] == "text":
        opened: dict[str, Any] = {"type": "text", "text": ""}
        pieces = [block["text"][i : i + 40] for i in range(0, len(block["text"]), 40)]
        deltas = [{"type": "text_delta", "text": piece} for piece in pieces]
    else:
        opened = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        raw = json.dumps(block["input"])
        pieces = [raw[i : i + 30] for i in range(0, len(raw), 30)]
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
    yield _event("content_block_start", {"index": index, "content_block": opened})
    if index == 0 and block["type"] == "text":
        yield _event("ping", {})
    for delta in deltas:
        yield _event("content_block_delta", {"index": index, "delta": delta})
    yield _event("content_block_stop", {"index": index})


def stream_events(message: dict[str, Any]) -> Iterator[str]:
    """A message as server-sent events, in the order the Messages API sends them."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield _event("message_start", {"message": start})
    for index, block in enumerate(message["content"]):
        yield from _block_events(index, block)
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    yield _event("message_delta", {"delta": delta, "usage": dict(usage)})
    yield _event("message_stop", {})
