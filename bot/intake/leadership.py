"""Which process of `serve` leads: the one holding an exclusive `flock` on the data dir's
`serve.lock` runs the in-process worker and the WAL checkpoints; the others only take deliveries,
and one of them takes over when the leader dies — never one that is stopping too."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

log = structlog.get_logger("shipmate.server")
Duty = Callable[[asyncio.Event], Awaitable[None]]


def on_stop_signal(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    """Call `callback` on the loop as soon as SIGTERM or SIGINT arrives, before the handler
    uvicorn installed (which starts the graceful stop) runs as before."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach the main thread only; an app served elsewhere has no stop signal
    for number in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(number)
        if not callable(previous):
            continue

        def handler(sig: int, frame: FrameType | None, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(callback)
            previous(sig, frame)

        signal.signal(number, handler)


async def lead(
    lock_path: Path, stop: asyncio.Event, duties: Sequence[Duty], resign: asyncio.Event
) -> None:
    """Run `duties` (the in-process worker, the WAL checkpoints) until `stop`, in one process
    of `serve`: the one that holds an exclusive lock on `lock_path`. The others (`--workers N`)
    only take deliveries, and try for the lock every second, so that one of them takes over
    when the holder dies — unless `resign` says this one is stopping too (a SIGTERM to every
    process of `serve`: the one that stops last must not take the lead on its way out)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if not await take_lock(fd, stop, resign):
            return
        log.info("serve.leading", pid=os.getpid())
        await asyncio.gather(*(duty(stop) for duty in duties))
    finally:
        os.close(fd)  # releases the lock


async def take_lock(fd: int, stop: asyncio.Event, resign: asyncio.Event) -> bool:
    """Wait for an exclusive `flock` on `fd`; False when `stop` or `resign` comes first."""
    while not stop.is_set() and not resign.is_set():
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    return False
