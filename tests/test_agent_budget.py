"""Budget: limits layered from their sources, and `bound`, which stops waiting for a model call
or tool run when the time is up or a maintainer cancels."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.agent.budget import (
    Budget,
    Cancelled,
    Caps,
    Completed,
    CostLimit,
    Failed,
    RunEnded,
    StepLimit,
    TimeLimit,
)


def test_each_limit_comes_from_the_first_source_that_sets_it() -> None:
    budget = Budget.layered(
        [Caps(max_steps=3), Caps(max_steps=9, timeout_seconds=60.0), Caps(40, 2.0, 1800.0)]
    )
    assert (budget.max_steps, budget.max_cost_usd, budget.timeout_seconds) == (3, 2.0, 60.0)
    with pytest.raises(ValueError, match="max_cost_usd"):
        Budget.layered([Caps(max_steps=1, timeout_seconds=1.0)])


def test_bound_returns_the_result_and_raises_the_works_error() -> None:
    async def go() -> None:
        budget = Budget(10, 1.0, 5.0)
        assert await budget.bound(asyncio.sleep(0.01, result="done")) == "done"

        async def broken() -> None:
            raise OSError("disk")

        with pytest.raises(OSError, match="disk"):
            await budget.bound(broken())

    asyncio.run(go())


def test_bound_stops_at_the_deadline_and_cancels_the_work() -> None:
    cleaned: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.append("cancelled")

    async def go() -> float:
        budget = Budget(10, 1.0, 0.5)
        started = time.monotonic()
        with pytest.raises(TimeLimit, match=r"the limit is 0.5 s"):
            await budget.bound(slow(), grace=0.3)
        return time.monotonic() - started

    elapsed = asyncio.run(go())
    assert 0.8 <= elapsed < 1.5 and cleaned == ["cancelled"]


def test_bound_polls_the_cancel_flag_while_the_work_runs() -> None:
    flag = {"set": False}

    async def go() -> float:
        budget = Budget(10, 1.0, 60.0, cancelled=lambda: flag["set"])
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, flag.update, {"set": True})
        started = time.monotonic()
        with pytest.raises(Cancelled, match="cancelled"):
            await budget.bound(asyncio.sleep(30))
        return time.monotonic() - started

    assert asyncio.run(go()) < 1.0


def test_each_ending_reports_its_status_and_a_new_one_must_name_its_own() -> None:
    endings = [Completed, StepLimit, CostLimit, TimeLimit, Failed, Cancelled]
    statuses = [ending("why").status for ending in endings]
    assert statuses == ["completed", "step_limit", "cost_limit", "timeout", "failed", "failed"]
    assert StepLimit("after 3 steps").reason == "after 3 steps"
    with pytest.raises(TypeError):
        type("Unnamed", (RunEnded,), {})
