"""Changes held back for their size, until a maintainer publishes one (bot/runs/held.py). The
patch is stored compressed; a row is marked published once, so a second `apply --large` finds
nothing left to publish."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from bot.db import schema
from bot.db.engine import TableAccess, record_of


@dataclass(frozen=True)
class HeldChange:
    run_id: str
    repo: str
    number: int
    base_sha: str
    tree: str
    patch: bytes
    detail: dict[str, Any]
    published_at: float | None = None


class HeldChanges(TableAccess):
    def hold(
        self,
        run_id: str,
        *,
        repo: str,
        number: int,
        base_sha: str,
        tree: str,
        patch: bytes,
        detail: dict[str, Any],
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(schema.held_changes).values(
                    run_id=run_id,
                    repo=repo,
                    number=number,
                    base_sha=base_sha,
                    tree=tree,
                    patch=zlib.compress(patch, 6),
                    detail=detail,
                    created_at=time.time(),
                )
            )

    def get(self, run_id: str) -> HeldChange | None:
        table = schema.held_changes
        with self.engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.run_id == run_id)).first()
        if row is None:
            return None
        patch, detail = zlib.decompress(row.patch), dict(row.detail or {})
        return record_of(HeldChange, row, patch=patch, detail=detail)

    def mark_published(self, run_id: str, by: str | None) -> bool:
        """Record that the change was published; False if it already was."""
        table = schema.held_changes
        with self.engine.begin() as conn:
            result = conn.execute(
                update(table)
                .where(table.c.run_id == run_id, table.c.published_at.is_(None))
                .values(published_at=time.time(), published_by=by)
            )
        return bool(result.rowcount)
