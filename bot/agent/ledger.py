"""Usage and cost of a run: every model call, summed exactly as the API reported it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bot.agent.pricing import price_for


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (
            self.input_tokens,
            self.output_tokens,
            self.cache_creation_input_tokens,
            self.cache_read_input_tokens,
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_api(cls, usage: Any) -> Usage:
        def get(name: str) -> int:
            value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, 0)
            return int(value or 0)

        return cls(
            get("input_tokens"),
            get("output_tokens"),
            get("cache_creation_input_tokens"),
            get("cache_read_input_tokens"),
        )


def cost_usd(usage: Usage, model: str) -> float:
    price = price_for(model)
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * price.cache_write
        + usage.cache_read_input_tokens * price.cache_read
    ) / 1_000_000


@dataclass
class Ledger:
    model: str
    calls: list[tuple[Usage, float, float]] = field(default_factory=list)  # usage, cost, ms

    def __post_init__(self) -> None:
        price_for(self.model)  # an unpriced model fails before its first call, not after

    def add(self, usage: Usage, duration_ms: float) -> None:
        self.calls.append((usage, cost_usd(usage, self.model), duration_ms))

    @property
    def usage(self) -> Usage:
        total = Usage()
        for usage, _, _ in self.calls:
            total = total + usage
        return total

    @property
    def cost(self) -> float:
        return sum(cost for _, cost, _ in self.calls)
