"""One command's trip through the namespace holder (bot/sandbox/holder.py).

Shipmate makes two FIFOs (stdout, stderr) and opens their read ends before the request goes out,
writes the request script, and sends its id to the holder, which runs the script in a forked
subshell. The script opens the FIFOs and a status file, notes its own pid there, joins the
sandbox's cgroup, sets the rlimits and runs bwrap (whose JSON status goes to the same file),
then adds bwrap's own exit status and the CPU time of what it ran. The command is done when both
FIFOs reach end of file: the subshell, the last writer, has exited. Shipmate wakes up once per
command, not per status line.

A FIFO opened for reading without blocking before any writer has opened it does not poll as
readable (Linux holds back the hang-up until a writer has come and gone), so the readers can be
in place before the command exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CHUNK = 65536
_TIMES = re.compile(r"^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$")


class Capture:
    """One pipe's output, capped: the first and the last `half` bytes, and the total seen."""

    def __init__(self, half: int) -> None:
        self.half = max(1, half)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.half:
                del self.tail[: len(self.tail) - self.half]

    def result(self) -> tuple[bytes, int]:
        """(the kept bytes, with a marker where the middle was cut; how many bytes were cut)."""
        if self.total <= 2 * self.half:
            return bytes(self.head + self.tail), 0
        cut = self.total - 2 * self.half
        return bytes(self.head) + f"\n[... {cut} bytes cut ...]\n".encode() + bytes(self.tail), cut


def render(
    *, stdin: str, stdout: str, stderr: str, status: str, steps: Sequence[str], argv: Sequence[str]
) -> str:
    """The request script: everything but the redirections and `steps` (cgroup, rlimits) is
    quoted, so no argument is ever read as shell syntax."""
    quoted = " ".join(shlex.quote(arg) for arg in argv)
    # The FIFOs are gone when Shipmate gave up on the request (timed out or cancelled before the
    # holder got to it): then nothing runs, rather than writing to new plain files.
    redirect = (
        f"[ -p {shlex.quote(stdout)} ] && [ -p {shlex.quote(stderr)} ] || exit 1\n"
        f"exec <{shlex.quote(stdin)} >{shlex.quote(stdout)} 2>{shlex.quote(stderr)} "
        f"3>{shlex.quote(status)} || exit 1"
    )
    # dash does not tell a subshell its own pid; /proc/self, resolved by the `cd` builtin, does
    # (bwrap sets its own working directory).
    own_pid = 'cd -P /proc/self && echo "{\\"waiter-pid\\": ${PWD#/proc/}}" >&3'
    run = " && ".join([*steps, quoted])
    return f'{redirect}\n{own_pid}\n{run}\necho "{{\\"bwrap-exit\\": $?}}" >&3\ntimes >&3\n'


@dataclass(frozen=True)
class Status:
    """What bwrap and the request's subshell reported."""

    exit_code: int | None  # the command's, when it ran (bwrap's "exit-code")
    bwrap_exit: int | None  # bwrap's own exit status (or the set-up steps')
    child_pid: int | None  # the sandbox's PID 1, as the host sees it
    cpu_seconds: float  # user + system time of everything the request ran
    waiter_pid: int | None = None  # the request's subshell, bwrap's parent


def parse_status(data: bytes) -> Status:
    exit_code = bwrap_exit = child_pid = waiter_pid = None
    cpu = 0.0
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                fields = json.loads(line)
                if isinstance(fields, dict):
                    exit_code = fields.get("exit-code", exit_code)
                    bwrap_exit = fields.get("bwrap-exit", bwrap_exit)
                    child_pid = fields.get("child-pid", child_pid)
                    waiter_pid = fields.get("waiter-pid", waiter_pid)
        elif match := _TIMES.match(line):
            # `times` prints the shell's own times, then its children's: the last line wins.
            minutes_user, user, minutes_sys, system = match.groups()
            cpu = 60 * (int(minutes_user) + int(minutes_sys)) + float(user) + float(system)
    return Status(exit_code, bwrap_exit, child_pid, cpu, waiter_pid)


class Pipes:
    """The FIFOs of one request, read without blocking into captures as data arrives, and its
    status file."""

    def __init__(self, folder: Path, name: str, out: Capture, err: Capture) -> None:
        self.folder = folder
        self.name = name
        self.paths = {kind: f"{folder}/{name}.{kind}" for kind in ("out", "err", "status")}
        self._fds: list[int] = []
        self._waits: list[asyncio.Future[None]] = []
        self._loop = asyncio.get_running_loop()
        sinks: dict[str, Callable[[bytes], None]] = {"out": out.feed, "err": err.feed}
        try:
            for kind, sink in sinks.items():
                path = self.paths[kind]
                os.mkfifo(path, 0o600)
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                self._fds.append(fd)
                self._waits.append(self._drain(fd, sink))
        except BaseException:
            self.close()
            raise

    def _drain(self, fd: int, sink: Callable[[bytes], None]) -> asyncio.Future[None]:
        done: asyncio.Future[None] = self._loop.create_future()

        def readable() -> None:
            try:
                chunk = os.read(fd, CHUNK)
            except BlockingIOError:
                return
            if chunk:
                sink(chunk)
                return
            self._loop.remove_reader(fd)
            if not done.done():
                done.set_result(None)

        self._loop.add_reader(fd, readable)
        return done

    def done(self) -> asyncio.Future[list[None]]:
        """Resolves once every writer of both FIFOs is gone."""
        return asyncio.gather(*self._waits)

    def status(self) -> Status:
        """What the status file holds so far."""
        try:
            with open(self.paths["status"], "rb") as file:
                return parse_status(file.read())
        except FileNotFoundError:
            return parse_status(b"")

    def close(self) -> None:
        for fd in self._fds:
            self._loop.remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []
        for wait in self._waits:
            if not wait.done():
                wait.cancel()
        for path in self.paths.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
