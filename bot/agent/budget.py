"""Limits of a run, checked before every model call, and the exceptions that end a run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


class RunEnded(Exception):
    """A run is over. `status` is what `shipmate run --json` reports."""

    status = "failed"

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class Completed(RunEnded):
    status = "completed"


class StepLimit(RunEnded):
    status = "step_limit"


class CostLimit(RunEnded):
    status = "cost_limit"


class TimeLimit(RunEnded):
    status = "timeout"


class Blocked(RunEnded):
    status = "blocked"


class Failed(RunEnded):
    status = "failed"


class Cancelled(RunEnded):
    status = "failed"


@dataclass
class Budget:
    max_steps: int
    max_cost_usd: float
    timeout_seconds: float
    cancelled: Callable[[], bool] = lambda: False
    started: float = field(default_factory=time.monotonic)

    def check(self, steps: int, cost_usd: float) -> None:
        if self.cancelled():
            raise Cancelled("stopped: a maintainer cancelled the task")
        if steps >= self.max_steps:
            raise StepLimit(f"stopped after {steps} steps (the limit is {self.max_steps})")
        if cost_usd >= self.max_cost_usd:
            raise CostLimit(f"stopped at ${cost_usd:.4f} (the limit is ${self.max_cost_usd:.2f})")
        if self.elapsed() >= self.timeout_seconds:
            raise TimeLimit(
                f"stopped after {self.elapsed():.0f} s (the limit is {self.timeout_seconds:.0f} s)"
            )

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return max(0.0, self.timeout_seconds - self.elapsed())
