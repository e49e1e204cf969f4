"""Prompt caching in the agent loop: replay a recorded 22-turn run (benchmarks/data/) through
the real loop against the Messages stand-in, which computes cache reads from the actual request
prefixes; once with Shipmate's cache breakpoints, once without. Tool outputs come from the
recording (the tools are not what is measured here).

Prints the share of input tokens read from cache, the p95 of new (uncached) input tokens per
turn, and the cost with caching relative to without. Last line: one JSON object.
"""

# ruff: noqa: E402 (the imports wait for sys.path to be set right)
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder is first on sys.path, where queue.py would stand in for the
# standard library's `queue` (concurrent.futures imports it): take the folder off first.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import asyncio
import json
import os
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.agent.budget import Budget
from bot.agent.loop import Agent
from bot.agent.model import AnthropicModel
from bot.agent.prompts import RULES
from bot.agent.tools import ToolResult
from standins.anthropic import MessagesStandIn, Turn

RECORDING = Path(__file__).parent / "data" / "agent_transcript.json"
MODEL = "claude-sonnet-4-6"


class ReplayTools:
    def __init__(self, outputs: list[str]) -> None:
        self.outputs = list(outputs)

    async def run(
        self, name: str, tool_input: Any, *, time_left: float | None = None
    ) -> ToolResult:
        return ToolResult(self.outputs.pop(0))


async def replay(caching: bool) -> tuple[list[dict[str, int]], float, str]:
    recording = json.loads(RECORDING.read_text())
    turns = recording["turns"]
    outputs = [out for turn in turns for out in turn["outputs"]]
    with MessagesStandIn() as standin:
        os.environ["ANTHROPIC_BASE_URL"] = standin.url
        os.environ.setdefault("ANTHROPIC_API_KEY", "benchmark")
        standin.script(
            [Turn(tuple(t["assistant"]), "tool_use" if t["outputs"] else "end_turn") for t in turns]
        )
        model = AnthropicModel(MODEL)
        agent = Agent(
            model,
            ReplayTools(outputs),  # type: ignore[arg-type]
            Budget(max_steps=100, max_cost_usd=100, timeout_seconds=600),
            caching=caching,
        )
        try:
            outcome = await agent.run(
                RULES + "\n" + "Repository conventions: " + "keep it small. " * 150,
                recording["task"],
            )
        finally:
            await model.close()
        assert not standin.failures, standin.failures
        return [r["usage"] for r in standin.responses], agent.ledger.cost, outcome.status


def p95(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def summarize(name: str, usages: list[dict[str, int]], cost: float) -> dict[str, float]:
    read = sum(u["cache_read_input_tokens"] for u in usages)
    total = sum(
        u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
        for u in usages
    )
    new = [u["input_tokens"] + u["cache_creation_input_tokens"] for u in usages]
    print(
        f"{name:14} turns {len(usages):3}  input {total:8}  read from cache {read:8} ({read / total:.1%})"
        f"  new per turn p95 {p95(new):6}  cost ${cost:.4f}"
    )
    return {"share": read / total, "p95": p95(new), "cost": cost}


def main() -> int:
    cached_usage, cached_cost, status = asyncio.run(replay(caching=True))
    plain_usage, plain_cost, plain_status = asyncio.run(replay(caching=False))
    assert status == plain_status == "completed", (status, plain_status)
    cached = summarize("with caching", cached_usage, cached_cost)
    plain = summarize("without", plain_usage, plain_cost)
    ratio = cached["cost"] / plain["cost"]
    print(f"cost with caching / without: {ratio:.3f}")
    print(
        json.dumps(
            {
                "turns": len(cached_usage),
                "cache_read_share": round(cached["share"], 4),
                "new_tokens_p95": cached["p95"],
                "uncached_cost_ratio": round(ratio, 4),
                "no_cache_new_tokens_p95": plain["p95"],
                "cost_usd_cached": round(cached["cost"], 6),
                "cost_usd_uncached": round(plain["cost"], 6),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
