"""List prices per million tokens, by model. Bedrock (`[us.]anthropic.claude-…-v1:0`) and Vertex
(`claude-…@date`) ids are priced as the Anthropic model they name. A model with no known price
is an error, never a guess; SHIPMATE_PRICES (JSON, model-id prefix -> price) adds or overrides."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass


class UnpricedModel(Exception):
    """No price is known for a model, or SHIPMATE_PRICES is malformed."""


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cache_write: float
    cache_read: float


def list_price(input_usd: float, output_usd: float) -> Price:
    """A price with Anthropic's cache multipliers: 5-minute writes 1.25x input, reads 0.1x."""
    return Price(input_usd, output_usd, input_usd * 1.25, input_usd * 0.1)


# USD per million tokens at list price, by id prefix (the longest matching prefix wins).
PRICES: dict[str, Price] = {
    "claude-opus-4": list_price(5.0, 25.0),  # Opus 4.5 and later
    "claude-opus-4-0": list_price(15.0, 75.0),
    "claude-opus-4-2025": list_price(15.0, 75.0),  # claude-opus-4-20250514
    "claude-opus-4-1": list_price(15.0, 75.0),
    "claude-3-opus": list_price(15.0, 75.0),
    "claude-sonnet-4": list_price(3.0, 15.0),
    "claude-3-7-sonnet": list_price(3.0, 15.0),
    "claude-3-5-sonnet": list_price(3.0, 15.0),
    "claude-haiku-4": list_price(1.0, 5.0),
    "claude-3-5-haiku": list_price(0.8, 4.0),
    "claude-3-haiku": list_price(0.25, 1.25),
}

_BEDROCK_VERSION = re.compile(r"-v\d+(:\d+)?$")


def anthropic_id(model: str) -> str:
    """The Anthropic API's name for a Bedrock or Vertex model id (unchanged otherwise)."""
    name = model.strip().split("@", 1)[0]
    if "anthropic." in name:
        name = name.split("anthropic.", 1)[1]
    return _BEDROCK_VERSION.sub("", name)


def _configured(text: str) -> dict[str, Price]:
    try:
        table = json.loads(text)
        return {
            prefix: Price(
                float(v["input"]),
                float(v["output"]),
                float(v.get("cache_write", float(v["input"]) * 1.25)),
                float(v.get("cache_read", float(v["input"]) * 0.1)),
            )
            for prefix, v in table.items()
        }
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UnpricedModel(
            "SHIPMATE_PRICES must be JSON like "
            '{"model-id-prefix": {"input": 3, "output": 15}} (USD per million tokens): '
            f"{type(exc).__name__}: {exc}"
        ) from None


def _longest(model: str, table: dict[str, Price]) -> Price | None:
    matches = [prefix for prefix in table if model.startswith(prefix)]
    return table[max(matches, key=len)] if matches else None


def price_for(model: str) -> Price:
    override = os.environ.get("SHIPMATE_PRICES")
    if override:
        table = _configured(override)
        price = _longest(model, table) or _longest(anthropic_id(model), table)
        if price is not None:
            return price
    price = _longest(anthropic_id(model), PRICES)
    if price is None:
        raise UnpricedModel(
            f"no price is known for the model {model!r}; set SHIPMATE_PRICES, e.g. "
            f'{{"{model}": {{"input": 3, "output": 15}}}} (USD per million tokens)'
        )
    return price
