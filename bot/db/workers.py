"""The workers table family: each worker process's capacity, load and heartbeat."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, delete, select, update

from bot.db import schema


def report(engine: Engine, worker_id: str, **values: Any) -> None:
    """Write this worker's row (capacity, running, state, ...), its heartbeat now."""
    table = schema.workers
    values = {**values, "heartbeat_at": time.time()}
    with engine.begin() as conn:
        updated = conn.execute(update(table).where(table.c.id == worker_id).values(**values))
        if updated.rowcount == 0:
            conn.execute(table.insert().values(id=worker_id, **values))


def remove(engine: Engine, worker_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(schema.workers).where(schema.workers.c.id == worker_id))


def prune(engine: Engine, older_than_seconds: float) -> int:
    """Forget workers whose heartbeat is older than `older_than_seconds`: killed, or their
    host is gone."""
    table = schema.workers
    cutoff = time.time() - older_than_seconds
    with engine.begin() as conn:
        return int(conn.execute(delete(table).where(table.c.heartbeat_at < cutoff)).rowcount)


def listed(engine: Engine) -> list[dict[str, Any]]:
    """Every worker, with `age_seconds` since its heartbeat, for the queue page."""
    table = schema.workers
    now = time.time()
    with engine.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.started_at))
        return [{**row._mapping, "age_seconds": now - row.heartbeat_at} for row in rows]
