"""bot/runs/work.py: the checkout a run took is given back even when no model can be made (a
credential gone since start-up), so the cache never keeps a tree leased to a dead run."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bot.runs.work import work


class Cache:
    def __init__(self) -> None:
        self.released: list[Any] = []

    def release(self, checkout: Any) -> None:
        self.released.append(checkout)


@pytest.mark.anyio
async def test_the_checkout_is_released_when_the_model_cannot_be_made() -> None:
    def no_model() -> Any:
        raise RuntimeError("no credential")

    cache = Cache()
    run: Any = SimpleNamespace(deps=SimpleNamespace(model=no_model, cache=cache))
    checkout: Any = object()
    unused: Any = None
    with pytest.raises(RuntimeError, match="no credential"):
        await work(run, checkout, "0" * 40, unused, unused, unused, unused)
    assert cache.released == [checkout]
