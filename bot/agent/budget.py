"""Limits of a run, checked before every model call and enforced during each model call and
tool run (`Budget.bound`), and the exceptions that end a run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")
CANCEL_POLL_SECONDS = 0.5  # the flag may be a database query (the queue's should_abort)


class RunEnded(Exception):
    """A run is over. `status` is what `shipmate run --json` reports; each ending names its own
    in its class line (`class StepLimit(RunEnded, status="step_limit")`)."""

    status: ClassVar[str] = "failed"

    def __init_subclass__(cls, *, status: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.status = status

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class Completed(RunEnded, status="completed"):
    """The model finished with an answer."""


class StepLimit(RunEnded, status="step_limit"):
    """The run took as many steps as it may."""


class CostLimit(RunEnded, status="cost_limit"):
    """The run, or a budget beyond it, has spent what it may."""


class TimeLimit(RunEnded, status="timeout"):
    """The run is out of time."""


class Failed(RunEnded, status="failed"):
    """The model stopped without finishing: its answer cut short, or a refusal."""


class Cancelled(RunEnded, status="failed"):
    """A maintainer stopped the task."""


@dataclass(frozen=True)
class Caps:
    """A run's limits as one source sets them (CLI flags, the repository's config, the
    settings); None leaves that limit to the next source."""

    max_steps: int | None = None
    max_cost_usd: float | None = None
    timeout_seconds: float | None = None


def _first(values: list[T | None], name: str) -> T:
    for value in values:
        if value is not None:
            return value
    raise ValueError(f"no source sets {name}")


@dataclass
class Budget:
    max_steps: int
    max_cost_usd: float
    timeout_seconds: float
    cancelled: Callable[[], bool] = lambda: False
    started: float = field(default_factory=time.monotonic)
    # Budgets beyond this run (a month's spend): why no model call may be made, or None.
    over_budget: Callable[[], str | None] = lambda: None

    @classmethod
    def layered(
        cls, sources: Sequence[Caps], cancelled: Callable[[], bool] = lambda: False
    ) -> Budget:
        """Each limit from the first source that sets it (the most specific first)."""
        return cls(
            _first([s.max_steps for s in sources], "max_steps"),
            _first([s.max_cost_usd for s in sources], "max_cost_usd"),
            _first([s.timeout_seconds for s in sources], "timeout_seconds"),
            cancelled,
        )

    def check(self, steps: int, cost_usd: float) -> None:
        if self.cancelled():
            raise self._cancelled()
        if steps >= self.max_steps:
            raise StepLimit(f"stopped after {steps} steps (the limit is {self.max_steps})")
        if cost_usd >= self.max_cost_usd:
            raise CostLimit(f"stopped at ${cost_usd:.4f} (the limit is ${self.max_cost_usd:.2f})")
        beyond = self.over_budget()
        if beyond:
            raise CostLimit(f"stopped at ${cost_usd:.4f}: {beyond}")
        if self.elapsed() >= self.timeout_seconds:
            raise self._timed_out()

    async def bound(self, work: Awaitable[T], *, grace: float = 0.0) -> T:
        """Await `work`, but no longer than the time left (plus `grace`) and no longer than
        until a maintainer cancels: then `work` is cancelled (a sandbox command is killed) and
        the run ends with TimeLimit or Cancelled."""
        task = asyncio.ensure_future(work)
        deadline = time.monotonic() + self.remaining() + grace
        try:
            while True:
                wait = min(CANCEL_POLL_SECONDS, deadline - time.monotonic())
                await asyncio.wait({task}, timeout=max(0.0, wait))
                if task.done():
                    return task.result()
                if self.cancelled():
                    raise self._cancelled()
                if time.monotonic() >= deadline:
                    raise self._timed_out()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
                if not task.cancelled():
                    task.exception()  # retrieved: it is the cancelled work's, not the run's

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return max(0.0, self.timeout_seconds - self.elapsed())

    def _cancelled(self) -> Cancelled:
        return Cancelled("stopped: a maintainer cancelled the task")

    def _timed_out(self) -> TimeLimit:
        return TimeLimit(
            f"stopped after {self.elapsed():.0f} s (the limit is {self.timeout_seconds:g} s)"
        )
