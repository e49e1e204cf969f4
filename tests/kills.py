"""A job killed part-way, in-process: what a worker SIGKILLed just after one of its GitHub calls
leaves behind."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bot.db.audit import StoreAudit


@contextmanager
def killed_before_the_audit_row(action: str) -> Iterator[None]:
    """Within it, a job dies where it would write its audit row of `action` (a GitHub call
    done, its row not written): the job fails, to run again."""
    recorded = StoreAudit.__call__

    async def killed(self: StoreAudit, done: str, *args: Any) -> None:
        if done == action:
            raise RuntimeError(f"killed after {action}, before its audit row")
        await recorded(self, done, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StoreAudit, "__call__", killed)
        yield


@contextmanager
def killed_after(owner: Any, name: str) -> Iterator[None]:
    """Within it, a job dies just after the first call of `owner.name` (a class's method, or
    a module's function) returned, what it did on GitHub or in the store done: the job fails,
    to run again."""
    done = getattr(owner, name)
    if inspect.iscoroutinefunction(done):

        async def killed_async(*args: Any, **kwargs: Any) -> Any:
            await done(*args, **kwargs)
            raise RuntimeError(f"killed after {owner.__name__}.{name}")

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(owner, name, killed_async)
            yield
        return

    def killed(*args: Any, **kwargs: Any) -> Any:
        done(*args, **kwargs)
        raise RuntimeError(f"killed after {owner.__name__}.{name}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(owner, name, killed)
        yield
