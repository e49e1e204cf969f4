"""A worker process for tests: `python -m tests.worker_child DB_URL DIR LEASE GRACE`.

Its one job kind, "block", writes DIR/started-<pid>, waits until DIR/release exists, then
writes DIR/done-<pid>.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.db.store import Store
from bot.jobs.queue import Job
from bot.jobs.sql import SQLQueue
from bot.jobs.worker import JobContext, Worker, install_stop_signals


def main() -> None:
    url, folder, lease, grace = (
        sys.argv[1],
        Path(sys.argv[2]),
        float(sys.argv[3]),
        float(sys.argv[4]),
    )
    store = Store(url)
    queue = SQLQueue(store)

    async def block(job: Job, context: JobContext) -> None:
        (folder / f"started-{os.getpid()}").write_text(str(job.id))
        while not (folder / "release").exists():
            await asyncio.sleep(0.02)
        (folder / f"done-{os.getpid()}").write_text(str(job.id))

    async def run() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        worker = Worker(
            queue, {"block": block}, lease_seconds=lease, poll_seconds=0.05, grace_seconds=grace
        )
        (folder / f"ready-{os.getpid()}").write_text("")
        await worker.run(stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
