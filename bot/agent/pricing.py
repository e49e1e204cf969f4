"""List prices per million tokens, by model family; configurable (SHIPMATE_PRICES as JSON)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cache_write: float
    cache_read: float


# USD per million tokens at list price (5-minute cache writes at 1.25x input, reads at 0.1x).
PRICES: dict[str, Price] = {
    "claude-opus": Price(5.0, 25.0, 6.25, 0.50),
    "claude-sonnet": Price(3.0, 15.0, 3.75, 0.30),
    "claude-haiku": Price(1.0, 5.0, 1.25, 0.10),
}
DEFAULT = PRICES["claude-sonnet"]


def price_for(model: str) -> Price:
    override = os.environ.get("SHIPMATE_PRICES")
    if override:
        table = json.loads(override)
        for prefix, values in table.items():
            if model.startswith(prefix):
                return Price(**values)
    for prefix, price in PRICES.items():
        if model.startswith(prefix):
            return price
    return DEFAULT
