"""Changes held back for their size, until a maintainer publishes one (bot/runs/held.py). The
patch is stored compressed; a row is marked published once, so a second `apply --large` finds
nothing left to publish."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update

from bot.db import schema


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


class HeldChanges:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

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
        return HeldChange(
            run_id=row.run_id,
            repo=row.repo,
            number=row.number,
            base_sha=row.base_sha,
            tree=row.tree,
            patch=zlib.decompress(row.patch),
            detail=dict(row.detail or {}),
            published_at=row.published_at,
        )

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
