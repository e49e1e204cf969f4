"""`shipmate serve`'s machinery: uvicorn, one send per response, the lifespan that runs the
worker and the checkpoints in one leading process. bot/app.py builds what it serves."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import functools
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from types import FrameType
from typing import Any

import structlog
import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bot.config import Settings, StartupError
from bot.db.store import Store
from bot.intake.leadership import Duty, lead, on_stop_signal
from bot.jobs.backends import Runner

log = structlog.get_logger("shipmate.server")


Lifespan = Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]


def lifespan(
    settings: Settings, store: Store, worker: Runner | None, duties: Sequence[Duty] = ()
) -> Lifespan:
    """The app's lifespan: the leading process of `serve` runs the WAL checkpoints, the
    in-process `worker` (if any) and the other `duties` (the SQL queue's retention) until
    shutdown, then the store is closed."""

    @contextlib.asynccontextmanager
    async def running(app: Starlette) -> AsyncIterator[None]:
        stop, resign = asyncio.Event(), asyncio.Event()
        leader_duties: list[Duty] = [functools.partial(_checkpoint_every, store, 0.25), *duties]
        if worker is not None:
            leader_duties.append(worker.run)
        on_stop_signal(asyncio.get_running_loop(), resign.set)
        lock = settings.data_dir / "serve.lock"
        leading = asyncio.create_task(lead(lock, stop, leader_duties, resign))
        log.info(
            "serve.started", worker=worker is not None, app_configured=settings.has_app_credentials
        )
        try:
            yield
        finally:
            stop.set()
            await leading
            store.dispose()
            log.info("serve.stopped")

    return running


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
    """uvicorn's httptools protocol, each response written with one send (`HeadersWithBody`),
    and read deadlines uvicorn lacks: a connection must send a request's headers within
    `header_timeout` of opening (or of its first byte, after a keep-alive pause) and its body
    within `body_timeout` of the headers, else it is closed. A slow client (slow loris) so holds
    a connection, and the memory of its half-read request, for seconds, not for ever."""

    header_timeout = 10.0
    body_timeout = 60.0

    @classmethod
    def configure(cls, settings: Settings) -> None:
        cls.header_timeout = settings.http_header_timeout_seconds
        cls.body_timeout = settings.http_body_timeout_seconds

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._read_within(self.header_timeout)

    def _read_within(self, seconds: float | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None if seconds is None else self.loop.call_later(seconds, self._too_slow)

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._read_within(self.header_timeout)

    def on_headers_complete(self) -> None:
        self._read_within(self.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._read_within(None)
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._read_within(None)
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        cycle.transport = HeadersWithBody(cycle.transport, cycle)
        super()._start_asgi_task(cycle, app)


class _Server(uvicorn.Server):
    """uvicorn, except that a graceful stop on SIGTERM ends the process with exit 0 (uvicorn
    re-raises the signal afterwards, which process managers log as a crash)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def stop_with_parent(parent: int) -> None:
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


def for_processes(with_worker: bool, factory: str) -> str:
    """The uvicorn target of `serve` with several processes on one port: `factory`
    ("module:function") builds each process's own app (and worker) from the environment, which
    this sets for them."""
    os.environ["SHIPMATE_SERVE_WITH_WORKER"] = "1" if with_worker else "0"
    os.environ["SHIPMATE_SERVE_PARENT"] = str(os.getpid())
    return factory


def listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything else starts, so that a port in use is one
    line naming it (uvicorn would log the bare errno, without the port, and exit 1)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is already in use (another `shipmate serve`?): stop "
                "what listens there, or choose another port with --port"
            ) from None
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def run(settings: Settings, target: Any, *, sock: socket.socket, workers: int) -> int:
    """Serve `target` (an app, or a factory path when `workers` > 1) on `sock` until SIGTERM;
    above one process, a supervisor runs them on that one socket."""
    if not settings.webhook_secret:
        log.warning(
            "serve.no_webhook_secret", hint="set SHIPMATE_WEBHOOK_SECRET or register the App at /"
        )
    host, port = sock.getsockname()[:2]
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
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()
    else:
        _Server(config).run(sockets=[sock])
    return 0
