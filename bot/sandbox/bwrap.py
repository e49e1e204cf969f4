"""The bubblewrap backend: every command runs in fresh user, PID, IPC, UTS, mount and network
namespaces, sees the host's system folders read-only, the task's checkout at /workspace, a
private /tmp and home, and an environment built from an allowlist.

The sandbox's processes live in their own cgroup (memory and process limits) and in a PID
namespace whose init dies with bwrap, so a timeout kills the whole tree, including processes
that forked, called setsid and detached.

Here: one task's sandbox and its state. Its namespace holder's start-up is in
bot/sandbox/holder_startup.py, a command's bwrap command line and environment in
bot/sandbox/command_line.py, one request's trip to the holder in bot/sandbox/dispatch.py, and
what a command's run comes to in bot/sandbox/outcome.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Unpack

from bot.sandbox import command_line, dispatch, holder_startup, identity, limits, outcome, seccomp
from bot.sandbox.base import (
    DEFAULT_TIMEOUT_SECONDS,
    ExecOptions,
    ExecResult,
    Limits,
    SandboxSpec,
    SandboxUnavailable,
)
from bot.sandbox.identity import SandboxIdentity
from bot.sandbox.request import Capture, Status


def find_bwrap(explicit: str | None = None) -> str:
    path = explicit or shutil.which("bwrap")
    if path is None or not os.access(path, os.X_OK):
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed: apt-get install bubblewrap; "
            "Shipmate never runs commands unsandboxed"
        )
    return path


class BwrapSandbox:
    """One task's sandbox. `exec` may be called many times; `close` removes every trace.

    A namespace holder (bot/sandbox/holder.py), started with the first command, keeps the
    task's disk and root tree and starts every command: each one is a fresh bwrap (new user, PID,
    IPC and UTS namespaces, the prepared root, a fresh /proc) forked from the holder's shell.
    """

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        bwrap: str | None = None,
        cgroup_root: Path = limits.CGROUP_ROOT,
        user: SandboxIdentity | None = None,
    ) -> None:
        self.spec = spec
        self.bwrap = find_bwrap(bwrap)
        self.cgroup_root = cgroup_root
        # The command running now (one at a time), so an egress request can be told by whom.
        self.running: tuple[str, ...] | None = None
        # Who the sandbox's processes are on the host: never root (refused here if it would be).
        self.user = user or identity.current()
        self._owner = (self.user.uid, self.user.gid) if self.user.switch else None
        try:
            self._seccomp = seccomp.program()
        except ValueError as exc:
            raise SandboxUnavailable(f"{exc}: its sandboxes could plant setuid files") from exc
        self._scratch = holder_startup.scratch(spec.task_id, self._seccomp, self._owner)
        self._disk = self._scratch / "disk"
        self._io = self._scratch / "io"
        self._sealed = False
        self._holder: asyncio.subprocess.Process | None = None
        self._exited: asyncio.Task[int] | None = None
        self._ids = itertools.count(1)
        self.extra_env: dict[str, str] = {}
        self.egress_socket: Path | None = None
        self.bridge_port: int | None = None
        # Given the listening socket the holder made on the sandbox's loopback (bridge_port).
        self.serve_bridge: Callable[[socket.socket], Awaitable[None]] | None = None
        self.ca_bundle: Path | None = None
        self.wall_seconds = 0.0
        self.cpu_seconds = 0.0
        self.closed = False
        self._group: limits.CgroupSet | None = None
        self._holder_lock = asyncio.Lock()

    @property
    def workspace(self) -> Path:
        return self.spec.workspace

    @property
    def root(self) -> Path:
        """The sandbox's root tree, as the holder's mount namespace shows it."""
        return self._disk / "root"

    def workspace_layers(self) -> tuple[Path, Path] | None:
        """(merged view, upper layer) of the /workspace overlay, from the host: they exist only
        in the holder's mount namespace. None when no command ever ran (nothing can differ).
        Read them only between commands, when nothing of the sandbox runs (each command's
        processes are killed when it ends)."""
        if self.spec.overlay_lower is None:
            raise SandboxUnavailable("this sandbox's /workspace is no overlay")
        if self._holder is None:
            return None
        if self._holder.returncode is not None:
            raise SandboxUnavailable("the sandbox's namespace holder is not running")
        disk = Path(f"/proc/{self._holder.pid}/root{self._disk}")
        return disk / "merged", disk / "upper"

    def argv(self, command: Sequence[str], env: Mapping[str, str]) -> list[str]:
        """The bwrap command line for `command`, run from the holder; bwrap reports on fd 3
        (JSON lines, "exit-code" only once the command itself started)."""
        # The holder's own bind of it: the sandbox uid need not reach our bwrap's folder.
        bwrap = self._scratch / "stage" / "bwrap"
        return command_line.bwrap_argv(bwrap, self.root, self.spec.image, command, env)

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return command_line.environment(self.spec.image, self.extra_env, extra)

    async def _start_holder(self) -> asyncio.subprocess.Process:
        """Start (once) the process that holds the sandbox's user, mount and network namespaces
        and starts its commands; the task's disk and root tree are mounted there, and the egress
        proxy listens on its loopback. It exits when we close its stdin, or when Shipmate dies."""
        async with self._holder_lock:
            if self._holder is not None:
                if self._holder.returncode is None:
                    return self._holder
                # A fresh one would silently start from an empty disk: the task's work is gone.
                raise SandboxUnavailable(
                    f"the sandbox's namespace holder exited ({self._holder.returncode}): "
                    "its /tmp, home and workspace changes are gone"
                )
            if self._owner is not None:
                await asyncio.to_thread(holder_startup.hand_over, self.spec, self._owner)
            group = self._cgroup()
            layout = holder_startup.layout(
                self.spec,
                sealed=self._sealed,
                disk=self._disk,
                io=self._io,
                rlimits=holder_startup.rlimits(self.spec.limits, group),
                user=self.user,
                bwrap=self.bwrap,
                ca_bundle=self.ca_bundle,
                port=self.bridge_port,
            )
            bridge = self.serve_bridge if self.bridge_port else None
            holder = await holder_startup.start(layout, group, self.user, bridge)
            self._holder = holder
            self._exited = asyncio.create_task(holder.wait())
            return holder

    def _disk_free_bytes(self) -> int | None:
        """Free space on the task's disk, seen through the holder's mount namespace."""
        if self._holder is None or self._holder.returncode is not None:
            return None
        try:
            stat = os.statvfs(f"/proc/{self._holder.pid}/root{self._disk}")
        except OSError:
            return None
        return stat.f_bavail * stat.f_frsize

    async def exec(self, argv: Sequence[str], **options: Unpack[ExecOptions]) -> ExecResult:
        stdin, env = options.get("stdin"), options.get("env")
        timeout_seconds = options.get("timeout_seconds")
        if self.closed:
            raise SandboxUnavailable("this sandbox is closed")
        if not argv:
            raise ValueError("nothing to run")
        lim: Limits = self.spec.limits
        timeout = timeout_seconds if timeout_seconds is not None else lim.timeout_seconds
        if timeout is None:
            timeout = DEFAULT_TIMEOUT_SECONDS
        group = self._cgroup()
        started = time.monotonic()
        cpu_before, oom_before = group.cpu_seconds(), group.oom_kills()
        holder = await self._start_holder()
        captured = (Capture(lim.output_bytes // 2), Capture(lim.output_bytes // 2))
        self.running = tuple(argv)
        try:
            command = self.argv(argv, self.environment(env))
            ended = await self._channel(holder).command(
                f"r{next(self._ids)}",
                command,
                stdin,
                captured,
                group,
                allowed=timeout,
                oom_before=oom_before,
            )
        finally:
            self.running = None
        wall = time.monotonic() - started
        cpu = outcome.cpu_used(cpu_before, group.cpu_seconds())
        self.wall_seconds += wall
        self.cpu_seconds += cpu
        return self._result(captured, *ended, timeout=timeout, wall=wall, cpu=cpu)

    def _result(
        self,
        captured: tuple[Capture, Capture],
        timed_out: bool,
        status: Status,
        oom: bool,
        *,
        timeout: float,
        wall: float,
        cpu: float,
    ) -> ExecResult:
        """What the command came to (bot/sandbox/outcome.py); the task's disk is looked at
        when it failed, for a note when it is full."""
        (stdout, cut_out), (stderr, cut_err) = captured[0].result(), captured[1].result()
        cut = cut_out + cut_err
        if timed_out:
            return outcome.timed_out(timeout, stdout, stderr, cut, wall, cpu)
        code, stderr = outcome.exit_code(status, stderr, oom)
        free = self._disk_free_bytes() if code != 0 else None
        return outcome.finished(
            code,
            stdout,
            stderr,
            oom=oom,
            disk_free=free,
            workspace_mib=self.spec.limits.workspace_mib,
            cut=cut,
            wall=wall,
            cpu=cpu,
        )

    def _channel(self, holder: asyncio.subprocess.Process) -> dispatch.Channel:
        return dispatch.Channel(holder, self._exited, self._io, self._owner)

    async def seal(self) -> None:
        """From now on the read-write binds (the dependency cache while `setup:` filled it)
        are read-only for every command, under a layer on the task's disk that is dropped with
        the sandbox: the holder remounts each bind read-only and mounts an overlay on it."""
        if self._sealed:
            return
        self._sealed = True
        if not self.spec.rw_binds or self._holder is None:
            return  # no command has run: the holder will start with them layered
        name = f"r{next(self._ids)}"
        insides = list(self.spec.rw_binds.values())
        await self._channel(self._holder).seal(name, insides, self._cgroup())

    def _cgroup(self) -> limits.CgroupSet:
        """The sandbox's cgroup, made on first use and kept until `close`."""
        if self._group is None:
            lim = self.spec.limits
            self._group = limits.create(lim.memory_mib, lim.max_processes, self.cgroup_root)
        return self._group

    async def close(self) -> None:
        self.closed = True
        if self._holder is not None:
            if self._holder.stdin is not None:
                self._holder.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._holder.pid, signal.SIGKILL)  # the holder and its requests
            await self._holder.wait()
            self._holder = None
        if self._exited is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._exited, 5)
            self._exited = None
        if self._group is not None:
            self._group.kill_all()
            self._group.remove()
            self._group = None
        shutil.rmtree(self._scratch, ignore_errors=True)

    async def __aenter__(self) -> BwrapSandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
