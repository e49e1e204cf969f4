"""Retention: what Shipmate keeps no longer than SHIPMATE_RETENTION_DAYS. Run hourly (a
periodic task on procrastinate; the leading `serve` process's duty on SQLite).

Deliveries go only once handled (a queued one still has its job); GitHub redelivers for a few
days at most, so a month of delivery ids still answers every repeat with `duplicate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from pathlib import Path

import structlog

from bot.config import Settings
from bot.db import workers
from bot.db.store import Store
from bot.jobs.queue import Queue

log = structlog.get_logger("shipmate.maintenance")


def _old_files(folder: Path, pattern: str, cutoff: float) -> list[Path]:
    if not folder.is_dir():
        return []
    return [path for path in folder.glob(pattern) if path.stat().st_mtime < cutoff]


def forget_transcripts(data_dir: Path, cutoff: float) -> int:
    """Run transcripts (data_dir/runs/*.jsonl) last written before `cutoff`."""
    old = _old_files(data_dir / "runs", "*.jsonl", cutoff)
    for path in old:
        path.unlink(missing_ok=True)
    return len(old)


def forget_caches(data_dir: Path, cutoff: float) -> int:
    """Dependency caches (data_dir/cache/deps/REPO/HASH, filled when HASH.done was written)
    filled before `cutoff`: the lock file they were for has likely moved on; a task that
    needs one again fills it afresh."""
    done = _old_files(data_dir / "cache" / "deps", "*/*.done", cutoff)
    for marker in done:
        marker.unlink(missing_ok=True)
        shutil.rmtree(marker.with_suffix(""), ignore_errors=True)
    return len(done)


def retention(settings: Settings, store: Store, queue: Queue) -> dict[str, int]:
    cutoff = time.time() - settings.retention_days * 86400
    removed = {
        "deliveries": store.delete_deliveries_before(cutoff),
        "jobs": queue.delete_finished_before(cutoff),
        "transcripts": forget_transcripts(settings.data_dir, cutoff),
        "caches": forget_caches(settings.data_dir, cutoff),
        "workers": workers.prune(store.engine, 86400),
    }
    log.info("retention.done", days=settings.retention_days, **removed)
    return removed


async def retention_every(
    settings: Settings, store: Store, queue: Queue, seconds: float, stop: asyncio.Event
) -> None:
    """Retention at start and every `seconds`, off the event loop, until `stop` (the SQL
    queue's: the leading `serve` process runs it)."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(retention, settings, store, queue)
        except Exception as exc:
            log.warning("retention.failed", error=f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
