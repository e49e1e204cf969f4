"""One command's trip through the namespace holder (bot/sandbox/holder.py).

Shipmate makes two FIFOs (stdout, stderr) and opens their read ends before the request goes out,
writes the request script, and sends its id to the holder, which runs the script in a forked
subshell (already in the sandbox's cgroups, with its rlimits). The script opens the FIFOs and a
status file, notes its own pid there and becomes bwrap (whose JSON status goes to the same file).
The command is done when both FIFOs reach end of file: bwrap, the last writer, has exited.
Shipmate wakes up once per command, not per status line.

A FIFO opened for reading without blocking before any writer has opened it does not poll as
readable (Linux holds back the hang-up until a writer has come and gone), so the readers can be
in place before the command exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CHUNK = 65536


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
    *, stdin: str, stdout: str, stderr: str, status: str, argv: Sequence[str], seccomp: str = ""
) -> str:
    """The request script: every path and argument is quoted, so none is ever read as shell
    syntax. The subshell becomes bwrap (`exec`: no process waits on it), with the seccomp
    filter (when given) on fd 4."""
    quoted = " ".join(shlex.quote(arg) for arg in argv)
    # The FIFOs are gone when Shipmate gave up on the request (timed out or cancelled before the
    # holder got to it): then nothing runs, rather than writing to new plain files.
    redirect = (
        f"[ -p {shlex.quote(stdout)} ] && [ -p {shlex.quote(stderr)} ] || exit 1\n"
        f"exec <{shlex.quote(stdin)} >{shlex.quote(stdout)} 2>{shlex.quote(stderr)} "
        f"3>{shlex.quote(status)}{f' 4<{shlex.quote(seccomp)}' if seccomp else ''} || exit 1"
    )
    # dash does not tell a subshell its own pid (bwrap's, once it execs); /proc/self, resolved by
    # the `cd` builtin, does (bwrap sets its own working directory).
    own_pid = 'cd -P /proc/self && echo "{\\"pid\\": ${PWD#/proc/}}" >&3'
    # Back to / : bwrap (and so the sandbox's /proc/1/environ) keeps PWD and OLDPWD.
    return f"{redirect}\n{own_pid}\ncd /\nexec {quoted}\n"


def render_holder(*, stdout: str, stderr: str, status: str, script: str) -> str:
    """A request the holder runs itself, in its namespaces but outside any sandbox (mounts
    on the root tree): `script` under `set -e`, its exit code reported as bwrap would."""
    redirect = (
        f"[ -p {shlex.quote(stdout)} ] && [ -p {shlex.quote(stderr)} ] || exit 1\n"
        f"exec </dev/null >{shlex.quote(stdout)} 2>{shlex.quote(stderr)} "
        f"3>{shlex.quote(status)} || exit 1"
    )
    return f'{redirect}\n(\nset -e\n{script}\n)\necho "{{\\"exit-code\\": $?}}" >&3\n'


def seal_script(insides: Sequence[str]) -> str:
    """The holder's commands that make each bind at `insides` (paths in the sandbox)
    read-only, under an overlay whose upper layer is on the task's disk (relative paths: the
    holder works in the sandbox's scratch folder)."""
    lines = []
    for index, inside in enumerate(insides):
        target, layer = shlex.quote(f"disk/root{inside}"), f"disk/sealed/{index}"
        options = f"lowerdir={target},upperdir={layer}/upper,workdir={layer}/work"
        lines += [
            f"mkdir -p {layer}/upper {layer}/work",
            f"mount -o remount,bind,ro,nosuid,nodev {target}",
            f"mount -t overlay -o nosuid,nodev,{options} overlay {target}",
        ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Status:
    """What the request's subshell and then bwrap reported."""

    pid: int | None = None  # the request's subshell, which became bwrap
    child_pid: int | None = None  # the sandbox's PID 1, as the host sees it
    exit_code: int | None = None  # the command's, once it ran (bwrap's "exit-code")


def parse_status(data: bytes) -> Status:
    fields: dict[str, int] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                fields.update((k, v) for k, v in entry.items() if isinstance(v, int))
    return Status(fields.get("pid"), fields.get("child-pid"), fields.get("exit-code"))


class Pipes:
    """The FIFOs of one request, read without blocking into captures as data arrives, and its
    status file."""

    def __init__(
        self,
        folder: Path,
        name: str,
        out: Capture,
        err: Capture,
        owner: tuple[int, int] | None = None,
    ) -> None:
        self.paths = {kind: f"{folder}/{name}.{kind}" for kind in ("out", "err", "status")}
        self._fds: list[int] = []
        self._waits: list[asyncio.Future[None]] = []
        self._loop = asyncio.get_running_loop()
        sinks: dict[str, Callable[[bytes], None]] = {"out": out.feed, "err": err.feed}
        try:
            for kind, sink in sinks.items():
                path = self.paths[kind]
                os.mkfifo(path, 0o600)
                if owner is not None:
                    os.chown(path, *owner)  # the holder's writers are the sandbox uid
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
