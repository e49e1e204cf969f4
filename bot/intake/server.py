"""`shipmate serve`: the web app under uvicorn, with a worker in the same process."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import functools
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import structlog
import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bot.config import Settings
from bot.db.store import Store
from bot.github.manifest import with_saved_credentials
from bot.intake.app import ShipmateApp, create_app
from bot.jobs.backends import make_runner, open_database
from bot.jobs.dispatch import job_handlers
from bot.jobs.maintenance import retention
from bot.jobs.sql import SQLQueue
from bot.jobs.worker import Worker

log = structlog.get_logger("shipmate.server")


def build(settings: Settings, *, with_worker: bool = True) -> tuple[ShipmateApp, Store]:
    """The app and its store; the worker (if any) runs in the app's lifespan."""
    store, queue = open_database(settings)
    from handlers import router

    jobs = job_handlers(settings, store, queue, router=router)
    worker = make_runner(settings, store, queue, jobs)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        duties: list[Duty] = [functools.partial(_checkpoint_every, store, 0.25)]
        if isinstance(queue, SQLQueue):
            # procrastinate's workers apply retention as a periodic task instead.
            duties.append(functools.partial(_retention_every, settings, store, queue, 3600))
        if with_worker:
            duties.append(worker.run)
        leading = asyncio.create_task(_lead(settings.data_dir / "serve.lock", stop, duties))
        log.info("serve.started", worker=with_worker, app_configured=settings.has_app_credentials)
        try:
            yield
        finally:
            stop.set()
            await leading
            store.dispose()
            log.info("serve.stopped")

    app = create_app(
        settings,
        store,
        router,
        on_queued=worker.notify if with_worker else None,
        lifespan=lifespan,
        queue=queue,
    )
    if isinstance(worker, Worker):
        worker.yield_to = app.busy
    return app, store


Duty = Callable[[asyncio.Event], Awaitable[None]]


async def _lead(lock_path: Path, stop: asyncio.Event, duties: Sequence[Duty]) -> None:
    """Run `duties` (the in-process worker, the WAL checkpoints) until `stop`, in one process
    of `serve`: the one that holds an exclusive lock on `lock_path`. The others (`--workers N`)
    only take deliveries, and try for the lock every second, so that one of them takes over
    when the holder dies."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if not await _take_lock(fd, stop):
            return
        log.info("serve.leading", pid=os.getpid())
        await asyncio.gather(*(duty(stop) for duty in duties))
    finally:
        os.close(fd)  # releases the lock


async def _take_lock(fd: int, stop: asyncio.Event) -> bool:
    """Wait for an exclusive `flock` on `fd`; False when `stop` comes first."""
    while not stop.is_set():
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    return False


async def _retention_every(
    settings: Settings, store: Store, queue: SQLQueue, seconds: float, stop: asyncio.Event
) -> None:
    """Retention (bot/jobs/maintenance.py) at start and every `seconds`, off the event loop."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(retention, settings, store, queue)
        except Exception as exc:
            log.warning("retention.failed", error=f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


async def _checkpoint_every(store: Store, seconds: float, stop: asyncio.Event) -> None:
    """SQLite's WAL checkpoint, off the event loop (see `Store.checkpoint`)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        try:
            await asyncio.to_thread(store.checkpoint)
        except Exception as exc:
            log.warning("store.checkpoint_failed", error=f"{type(exc).__name__}: {exc}")


class HeadersWithBody:
    """The transport as one response cycle of uvicorn sees it: the status line and headers,
    which uvicorn writes as soon as the app starts its response, go out with the first body
    chunk, in one send. Two sends cost a second system call and a second wake-up of the client
    per request (~10 us of CPU on the two sides, a tenth of a delivery). Headers still held at
    the end of the loop iteration (a response whose body comes later) go out alone then."""

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self._transport = transport
        self._cycle = cycle
        self._held: bytes | None = None
        self._headers_done = False

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif not self._headers_done and self._cycle.response_started:
            # The first write once the response has started: its status line and headers.
            self._headers_done = True
            self._held = data
            asyncio.get_running_loop().call_soon(self._flush)
            return
        self._transport.write(data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._flush()
        self._transport.close()


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, each response written with one send (`HeadersWithBody`)."""

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        cycle.transport = HeadersWithBody(cycle.transport, cycle)
        super()._start_asgi_task(cycle, app)


class _Server(uvicorn.Server):
    """uvicorn, except that a graceful stop on SIGTERM ends the process with exit 0 (uvicorn
    re-raises the signal afterwards, which process managers log as a crash)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def app_from_env() -> ShipmateApp:
    """The app for uvicorn's own process manager (`serve --workers N`): each worker process
    reads the settings from the environment the parent was started with."""
    from bot.logs import configure, settings_secrets

    _stop_with_parent(int(os.environ.get("SHIPMATE_SERVE_PARENT", "0")))
    settings = with_saved_credentials(Settings.load())
    configure(settings.log_format, settings.log_level, known=settings_secrets(settings))
    with_worker = os.environ.get("SHIPMATE_SERVE_WITH_WORKER", "1") == "1"
    return build(settings, with_worker=with_worker)[0]


def _stop_with_parent(parent: int) -> None:
    """SIGTERM this process when `parent` (the `serve --workers N` supervisor) dies, however it
    dies, so that no orphan keeps serving on the port (Linux; elsewhere a no-op)."""
    if not sys.platform.startswith("linux") or parent <= 0:
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


# More would mostly take turns on SQLite's one writer, each holding its own copy of the app.
MAX_DEFAULT_PROCESSES = 4


def default_processes() -> int:
    """`serve`'s web processes when neither `--workers` nor SHIPMATE_WEB_PROCESSES says: one
    per CPU this process may run on, at most MAX_DEFAULT_PROCESSES. One process keeps one core
    busy at most (Python runs one thread at a time), and the intake's work is CPU: verify,
    pack, commit."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_PROCESSES))


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    with_worker: bool = True,
    workers: int | None = None,
) -> int:
    """Serve until SIGTERM with `workers` processes (default: SHIPMATE_WEB_PROCESSES, else
    `default_processes()`); above one, a supervisor runs them on one socket."""
    settings = with_saved_credentials(settings)
    workers = workers or settings.web_processes or default_processes()
    if workers > 1:
        # Several processes on one port; each builds its own app (and worker) from the env.
        os.environ["SHIPMATE_SERVE_WITH_WORKER"] = "1" if with_worker else "0"
        os.environ["SHIPMATE_SERVE_PARENT"] = str(os.getpid())
        target: Any = "bot.intake.server:app_from_env"
        open_database(settings)[0].dispose()  # refuse here, once, before any child starts
    else:
        target = build(settings, with_worker=with_worker)[0]
    if not settings.webhook_secret:
        log.warning(
            "serve.no_webhook_secret", hint="set SHIPMATE_WEBHOOK_SECRET or register the App at /"
        )
    config = uvicorn.Config(
        target,
        factory=workers > 1,
        workers=workers,
        host=host,
        port=port,
        loop="uvloop",
        http=HttpProtocol,
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
    )
    server = _Server(config)
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        server.run()
    return 0
