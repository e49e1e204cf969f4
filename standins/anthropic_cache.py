"""The Messages stand-in's token counts and prompt cache, computed from the request.

Token counts are deterministic: ceil(UTF-8 bytes / 4) of each block's JSON. A request reads from
cache the longest prefix that ends at a breakpoint of an earlier request, looked for up to 20
blocks back from each of its own breakpoints, so a client that places its breakpoints badly sees it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

LOOKBACK_BLOCKS = 20
CACHE_TTL_SECONDS = 300.0


def tokens_of(value: Any) -> int:
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, sort_keys=True, separators=(",", ":"))
    )
    return max(1, math.ceil(len(text.encode()) / 4))


def _without_cache_control(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


def flatten(body: dict[str, Any]) -> list[tuple[dict[str, Any], bool]]:
    """The prompt as the API orders it for caching: tools, system, messages; each block with
    whether it carries a cache_control breakpoint."""
    blocks: list[tuple[dict[str, Any], bool]] = []
    for tool in body.get("tools") or []:
        blocks.append((_without_cache_control(tool), "cache_control" in tool))
    system = body.get("system")
    if isinstance(system, str):
        blocks.append(({"type": "text", "text": system}, False))
    elif isinstance(system, list):
        for block in system:
            blocks.append((_without_cache_control(block), "cache_control" in block))
    for message in body.get("messages") or []:
        content = message["content"]
        if isinstance(content, str):
            blocks.append(({"role": message["role"], "type": "text", "text": content}, False))
            continue
        for block in content:
            blocks.append(
                (
                    {"role": message["role"], **_without_cache_control(block)},
                    "cache_control" in block,
                )
            )
    return blocks


@dataclass
class PromptCache:
    """Prefix hashes written by earlier requests, with their token counts and expiry."""

    min_tokens: int = 1024
    entries: dict[str, tuple[int, float]] = field(default_factory=dict)

    def usage(
        self, blocks: list[tuple[dict[str, Any], bool]], now: float, model: str = ""
    ) -> tuple[int, int, int]:
        """(input_tokens, cache_creation_input_tokens, cache_read_input_tokens) for a prompt;
        caches are per model, as the API's are."""
        sizes = [tokens_of(block) for block, _ in blocks]
        prefix_tokens = [sum(sizes[: i + 1]) for i in range(len(sizes))]
        digest = hashlib.sha256(model.encode())
        hashes = []
        for block, _ in blocks:
            digest.update(json.dumps(block, sort_keys=True).encode())
            hashes.append(digest.copy().hexdigest())
        marks = [i for i, (_, marked) in enumerate(blocks) if marked]
        total = prefix_tokens[-1] if prefix_tokens else 0
        if not marks:
            return total, 0, 0
        read = 0
        for mark in marks:
            for j in range(mark, max(-1, mark - LOOKBACK_BLOCKS), -1):
                entry = self.entries.get(hashes[j])
                if entry is not None and entry[1] > now:
                    read = max(read, prefix_tokens[j])
                    self.entries[hashes[j]] = (entry[0], now + CACHE_TTL_SECONDS)
                    break
        last = marks[-1]
        cacheable = prefix_tokens[last]
        creation = 0
        if cacheable >= self.min_tokens:
            creation = max(0, cacheable - read)
            for mark in marks:
                if prefix_tokens[mark] >= self.min_tokens:
                    self.entries[hashes[mark]] = (prefix_tokens[mark], now + CACHE_TTL_SECONDS)
        else:
            read = min(read, cacheable)
        return total - read - creation, creation, read
