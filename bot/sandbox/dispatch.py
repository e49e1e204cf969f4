"""Shipmate's side of one request to the namespace holder (the request itself, its FIFOs and its
status: bot/sandbox/request.py): its files in the sandbox's `io` folder, its line on the
holder's stdin, the wait for its end, and the kill when it runs out of time or its caller gives
up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.sandbox import limits
from bot.sandbox.base import SandboxUnavailable
from bot.sandbox.request import Capture, Pipes, Status, render, render_holder, seal_script


@dataclass(frozen=True)
class Channel:
    """A running holder and the folder its requests go through."""

    holder: asyncio.subprocess.Process
    exited: asyncio.Task[int] | None  # the holder's exit
    io: Path
    owner: tuple[int, int] | None  # the sandbox uid and gid, when we are root

    @contextlib.contextmanager
    def files(self, name: str, out: Capture, err: Capture) -> Iterator[Pipes]:
        """Request `name`'s FIFOs, read into `out` and `err`; afterwards they, its script and
        its stdin file are gone."""
        pipes = Pipes(self.io, name, out, err, owner=self.owner)
        try:
            yield pipes
        finally:
            pipes.close()
            for path in (self.io / name, self.io / f"{name}.in"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def write(self, path: Path, data: bytes) -> None:
        """A file in `io` for the holder to read (it is the sandbox uid when we are root)."""
        path.write_bytes(data)
        if self.owner is not None:
            os.chown(path, *self.owner)

    async def request(
        self, name: str, script: str, pipes: Pipes, group: limits.CgroupSet, allowed: float | None
    ) -> bool:
        """Request `name` running `script`, to its end: True when it ran out of time."""
        self.write(self.io / name, script.encode())
        send(self.holder, name)
        return await wait(pipes, group, self.holder.pid, self.exited, allowed=allowed)

    async def command(
        self,
        name: str,
        argv: Sequence[str],
        stdin: bytes | None,
        captured: tuple[Capture, Capture],
        group: limits.CgroupSet,
        *,
        allowed: float,
        oom_before: int,
    ) -> tuple[bool, Status, bool]:
        """Request `name` running bwrap's `argv` in the sandbox, its output into `captured`:
        (it timed out, what bwrap reported, the OOM killer struck meanwhile). None of its
        processes outlives this."""
        stdin_path = self.io / f"{name}.in"
        with self.files(name, *captured) as pipes:
            try:
                if stdin is not None:
                    self.write(stdin_path, stdin)
                text = render(
                    stdin=str(stdin_path) if stdin is not None else os.devnull,
                    stdout=pipes.paths["out"],
                    stderr=pipes.paths["err"],
                    status=pipes.paths["status"],
                    argv=argv,
                    seccomp=str(self.io / "seccomp"),
                )
                timed_out = await self.request(name, text, pipes, group, allowed)
                status = pipes.status()
                if status.pid is None and self.holder.returncode is not None:
                    raise SandboxUnavailable(
                        f"the sandbox's namespace holder exited ({self.holder.returncode}) "
                        "before the command started"
                    )
            finally:
                group.kill_all(spare=self.holder.pid)
                oom = group.oom_kills() > oom_before  # this command's, not an earlier one's
        return timed_out, status, oom

    async def seal(self, name: str, insides: Sequence[str], group: limits.CgroupSet) -> None:
        """Request `name`, run by the holder itself: each bind at `insides` (paths in the
        sandbox) read-only from now on, under a layer on the task's disk."""
        err = Capture(4096)
        with self.files(name, Capture(4096), err) as pipes:
            script = render_holder(
                stdout=pipes.paths["out"],
                stderr=pipes.paths["err"],
                status=pipes.paths["status"],
                script=seal_script(insides),
            )
            await self.request(name, script, pipes, group, 30)
            code = pipes.status().exit_code
        if code != 0:
            reason = err.result()[0].decode("utf-8", "replace").strip() or f"exit {code}"
            raise SandboxUnavailable(f"could not make the dependency cache read-only: {reason}")


def send(holder: asyncio.subprocess.Process, name: str) -> None:
    """Ask the holder to run request `name` (its pipe has room: a line per command)."""
    assert holder.stdin is not None
    try:
        holder.stdin.write(f"{name}\n".encode())
    except (BrokenPipeError, ConnectionResetError, RuntimeError) as exc:
        raise SandboxUnavailable("the sandbox's namespace holder exited") from exc


async def wait(
    pipes: Pipes,
    group: limits.CgroupSet,
    holder: int,
    exited: asyncio.Task[int] | None,
    *,
    allowed: float | None,
) -> bool:
    """Wait for the command to finish; True when it ran out of time (and was killed)."""
    finished = pipes.done()
    assert exited is not None
    try:
        async with asyncio.timeout(allowed):
            either: list[asyncio.Future[Any]] = [finished, exited]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not finished.done():
            # The holder went down with the request: its processes went with it, unless it
            # never started it. Either way there is nothing more to read.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(finished), 1)
        return False
    except TimeoutError:
        kill(pipes, group, holder)
        # What the command wrote before the kill is kept: read the FIFOs to their end.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(finished), 5)
        return True
    except asyncio.CancelledError:
        # The caller gave up (a cancelled run): the command must not outlive it.
        kill(pipes, group, holder)
        raise
    finally:
        if not finished.done():
            finished.cancel()


def kill(pipes: Pipes, group: limits.CgroupSet, holder: int) -> None:
    # The request's subshell became bwrap, and bwrap's sandbox init dies with bwrap
    # (--die-with-parent), taking every process in its PID namespace with it; the init is
    # killed itself too, and the cgroup kill is the backstop.
    status = pipes.status()
    for pid in (status.child_pid, status.pid):
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    group.kill_all(spare=holder)
