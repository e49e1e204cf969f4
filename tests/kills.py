"""A job killed part-way, in-process: what a worker SIGKILLed just after one of its GitHub calls
leaves behind."""

from __future__ import annotations

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
