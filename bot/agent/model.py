"""The model side: a `Model` protocol and the Anthropic implementation (official SDK, streaming
so long answers never hit the non-streaming limit; the SDK retries 429/529 itself)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from bot.agent.ledger import Usage


@dataclass(frozen=True)
class Reply:
    content: list[dict[str, Any]]
    stop_reason: str
    usage: Usage
    duration_ms: float


class Model(Protocol):
    name: str

    async def reply(
        self,
        *,
        system: list[dict[str, Any]],
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        max_tokens: int,
    ) -> Reply: ...


def _block(block: Any) -> dict[str, Any]:
    """An SDK content block as the API takes it back in the next request."""
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    data: dict[str, Any] = block.model_dump(exclude_none=True)
    return data


class AnthropicModel:
    """Anthropic's API (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL), or Bedrock / Vertex."""

    def __init__(self, name: str, *, provider: str = "anthropic", max_retries: int = 4) -> None:
        import anthropic

        self.name = name
        client: Any
        if provider == "bedrock":
            client = anthropic.AsyncAnthropicBedrock(max_retries=max_retries)
        elif provider == "vertex":
            client = anthropic.AsyncAnthropicVertex(max_retries=max_retries)
        else:
            client = anthropic.AsyncAnthropic(max_retries=max_retries)
        self.client = client

    async def close(self) -> None:
        """Close the HTTP client on the loop that used it."""
        await self.client.close()

    async def reply(
        self,
        *,
        system: list[dict[str, Any]],
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        max_tokens: int,
    ) -> Reply:
        started = time.monotonic()
        async with self.client.messages.stream(
            model=self.name, max_tokens=max_tokens, system=system, messages=messages, tools=tools
        ) as stream:
            message = await stream.get_final_message()
        return Reply(
            content=[_block(b) for b in message.content],
            stop_reason=str(message.stop_reason),
            usage=Usage.from_api(message.usage),
            duration_ms=(time.monotonic() - started) * 1000,
        )
