"""The bubblewrap backend: every command runs in fresh user, PID, IPC, UTS, mount and network
namespaces, sees the host's system folders read-only, the task's checkout at /workspace, a
private /tmp and home, and an environment built from an allowlist.

The sandbox's processes live in their own cgroup (memory and process limits) and in a PID
namespace whose init dies with bwrap, so a timeout kills the whole tree, including processes
that forked, called setsid and detached.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from bot.sandbox import limits
from bot.sandbox.base import (
    EXIT_TIMEOUT,
    ExecResult,
    Limits,
    SandboxSpec,
    SandboxUnavailable,
)

INSIDE_WORKSPACE = "/workspace"
INSIDE_HOME = "/home/sandbox"
INSIDE_TMP = "/tmp"  # noqa: S108 - the sandbox's own /tmp, a private folder on the host
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SPAWN_ENV = {"PATH": PATH, "LC_ALL": "C"}

# /etc entries programs need; nothing with credentials (no shadow, no gitconfig, no ssh).
ETC_ALLOW = (
    "alternatives",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "passwd",
    "group",
    "hosts",
    "nsswitch.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "protocols",
    "services",
    "os-release",
    "debian_version",
    "python3",
    "python3.11",
    "java-17-openjdk",
    "magic",
)
DISK_FULL_BYTES = 1024 * 1024
HOLDER = Path(__file__).with_name("holder.py")
ROOT_LINKS_OR_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def find_bwrap(explicit: str | None = None) -> str:
    path = explicit or shutil.which("bwrap")
    if path is None or not os.access(path, os.X_OK):
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed: apt-get install bubblewrap; "
            "Shipmate never runs commands unsandboxed"
        )
    return path


@functools.cache
def _system_binds() -> tuple[str, ...]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ROOT_LINKS_OR_DIRS:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    return tuple(args)


@functools.cache
def _etc_entries() -> tuple[str, ...]:
    return tuple(name for name in ETC_ALLOW if (Path("/etc") / name).exists())


class BwrapSandbox:
    """One task's sandbox. `exec` may be called many times; `close` removes every trace."""

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        bwrap: str | None = None,
        cgroup_root: Path = limits.CGROUP_ROOT,
    ) -> None:
        self.spec = spec
        self.bwrap = find_bwrap(bwrap)
        self.cgroup_root = cgroup_root
        self._scratch = Path(tempfile.mkdtemp(prefix=f"shipmate-{spec.task_id}-"))
        # The task's disk: a size-capped tmpfs mounted here in a user and mount namespace of
        # the sandbox's own (see `_start_holder`); /tmp, home and the overlay's upper layer live
        # on it, so a task cannot fill the host's disk and leaves nothing behind.
        self._disk = self._scratch / "disk"
        self._disk.mkdir()
        self._holder: asyncio.subprocess.Process | None = None
        self.extra_env: dict[str, str] = {}
        self.egress_socket: Path | None = None
        self.bridge_port: int | None = None
        self.ca_bundle: Path | None = None
        self.wall_seconds = 0.0
        self.cpu_seconds = 0.0
        self.closed = False
        self._group: limits.CgroupSet | None = None
        self._holder_lock = asyncio.Lock()

    @property
    def workspace(self) -> Path:
        return self.spec.workspace

    def argv(
        self, command: Sequence[str], env: Mapping[str, str], status_fd: int | None = None
    ) -> list[str]:
        """The full bwrap command line for `command`; bwrap reports on `status_fd` (JSON lines,
        "exit-code" only once the command itself started)."""
        args = [self.bwrap]
        if status_fd is not None:
            args += ["--json-status-fd", str(status_fd)]
        args += [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "sandbox",
            "--uid",
            "1000",
            "--gid",
            "1000",
            *_system_binds(),
            "--ro-bind",
            str(self._disk / "etc"),
            "/etc",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--bind",
            str(self._tmp),
            INSIDE_TMP,
            "--bind",
            str(self._home),
            INSIDE_HOME,
            "--bind",
            str(self._merged if self.spec.overlay_lower else self.spec.workspace),
            INSIDE_WORKSPACE,
        ]
        for host_path, inside in self.spec.ro_binds.items():
            args += ["--ro-bind", str(host_path), inside]
        for host_path, inside in self.spec.rw_binds.items():
            args += ["--bind", str(host_path), inside]
        for index, inside in enumerate(self.spec.layered_binds.values()):
            args += ["--bind", str(self._disk / "layers" / str(index) / "merged"), inside]
        args += ["--chdir", INSIDE_WORKSPACE, "--clearenv"]
        for key, value in env.items():
            args += ["--setenv", key, value]
        return [*args, "--", *command]

    @property
    def _merged(self) -> Path:
        return self._disk / "merged"

    @property
    def _tmp(self) -> Path:
        return self._disk / "tmp"

    @property
    def _home(self) -> Path:
        return self._disk / "home"

    async def _start_holder(self) -> int:
        """Start (once) the process that holds the sandbox's user, mount and network namespaces:
        the task's tmpfs and overlay are mounted there, and its loopback has the egress bridge
        (socat: 127.0.0.1:bridge_port -> the proxy's socket), so commands start without either.
        Return its pid for nsenter. It exits when we close its stdin, or when Shipmate dies."""
        async with self._holder_lock:
            if self._holder is not None:
                if self._holder.returncode is None:
                    return self._holder.pid
                # A fresh one would silently start from an empty disk: the task's work is gone.
                raise SandboxUnavailable(
                    f"the sandbox's namespace holder exited ({self._holder.returncode}): "
                    "its /tmp, home and workspace changes are gone"
                )
            cap = self.spec.limits.workspace_mib
            options = "mode=0700" + (f",size={cap}m" if cap else "")
            lower = str(self.spec.overlay_lower or "")
            try:
                holder = await asyncio.create_subprocess_exec(
                    "unshare",
                    "--user",
                    "--map-root-user",
                    "--mount",
                    "--net",
                    "--",
                    sys.executable,
                    "-I",
                    "-S",
                    str(HOLDER),
                    options,
                    str(self._disk),
                    lower,
                    str(self.egress_socket or "") if self.bridge_port else "",
                    str(self.bridge_port or ""),
                    str(self.ca_bundle or ""),
                    json.dumps([str(path) for path in self.spec.layered_binds]),
                    *_etc_entries(),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                    env=SPAWN_ENV,
                )
            except OSError as exc:
                raise SandboxUnavailable(
                    f"could not start the sandbox's namespace holder: {exc}"
                ) from exc
            assert holder.stdout is not None and holder.stderr is not None
            try:
                ready = await asyncio.wait_for(holder.stdout.readline(), 30)
            except TimeoutError:
                ready = b""
            if ready != b"ready\n":
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(holder.pid, signal.SIGKILL)
                err = await holder.stderr.read()
                await holder.wait()
                raise SandboxUnavailable(_start_failure(holder.returncode or 0, err))
            self._holder = holder
            return holder.pid

    def _disk_free_bytes(self) -> int | None:
        """Free space on the task's disk, seen through the holder's mount namespace."""
        if self._holder is None or self._holder.returncode is not None:
            return None
        try:
            stat = os.statvfs(f"/proc/{self._holder.pid}/root{self._disk}")
        except OSError:
            return None
        return stat.f_bavail * stat.f_frsize

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            "PATH": PATH,
            "HOME": INSIDE_HOME,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TERM": "dumb",
            "USER": "sandbox",
            "TMPDIR": INSIDE_TMP,
            "SHIPMATE_SANDBOX": "1",
            # Stale bytecode after a same-size edit in the same second would hide the edit, and
            # __pycache__ folders would end up in the task's diff.
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.update(self.extra_env)
        if extra:
            env.update(extra)
        return env

    async def exec(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout_seconds: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        if self.closed:
            raise SandboxUnavailable("this sandbox is closed")
        if not argv:
            raise ValueError("nothing to run")
        lim: Limits = self.spec.limits
        timeout = timeout_seconds if timeout_seconds is not None else lim.timeout_seconds
        group = self._cgroup()
        started = time.monotonic()
        usage_before = os.times()
        holder = await self._start_holder()
        entered = [
            "nsenter",
            f"--target={holder}",
            "--user",
            "--mount",
            "--net",
            "--preserve-credentials",
            "--",
        ]
        status_read, status_write = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *self._limited(
                    [*entered, *self.argv(argv, self.environment(env), status_write)], group
                ),
                pass_fds=(status_write,),
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                # bwrap's own processes (PID 1 inside) keep the environment they were started
                # with, readable in /proc/1/environ: give them nothing of ours.
                env=SPAWN_ENV,
            )
        except OSError as exc:
            os.close(status_read)
            raise SandboxUnavailable(f"could not start bubblewrap: {exc}") from exc
        finally:
            os.close(status_write)
        timed_out = False
        captured = (_Capture(lim.output_bytes // 2), _Capture(lim.output_bytes // 2))
        collect = asyncio.ensure_future(_collect(process, stdin, captured))
        try:
            await asyncio.wait_for(asyncio.shield(collect), timeout=timeout)
        except TimeoutError:
            timed_out = True
            self._kill(process, group)
            # What the command wrote before the kill is kept: read the pipes to their end.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(collect, 5)
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
        except asyncio.CancelledError:
            # The caller gave up (a cancelled run): the command must not outlive it.
            self._kill(process, group)
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
            raise
        finally:
            if not collect.done():
                collect.cancel()
            group.kill_all()
            oom = group.oom_killed()
            status = _drain_fd(status_read)
        usage_after = os.times()
        wall = time.monotonic() - started
        cpu = (usage_after.children_user - usage_before.children_user) + (
            usage_after.children_system - usage_before.children_system
        )
        self.wall_seconds += wall
        self.cpu_seconds += max(0.0, cpu)
        (stdout, cut_out), (stderr, cut_err) = captured[0].result(), captured[1].result()
        cut = cut_out + cut_err
        if timed_out:
            note = f"\n[shipmate: killed after {timeout:g} s: the command timed out]\n"
            return ExecResult(
                EXIT_TIMEOUT, stdout, stderr + note.encode(), True, cut, wall, max(0.0, cpu)
            )
        code = process.returncode if process.returncode is not None else -1
        if b'"exit-code"' not in status and code >= 0 and not oom:
            not_run = _exec_failure(stderr)
            if not_run is None:
                raise SandboxUnavailable(_start_failure(code, stderr))
            code = not_run
        if code < 0:
            code = 128 - code  # killed by a signal: the shell's convention
        if oom:
            stderr += b"\n[shipmate: the sandbox ran out of memory]\n"
        free = self._disk_free_bytes() if code != 0 else None
        if free is not None and free < DISK_FULL_BYTES:
            stderr += (
                f"\n[shipmate: the task's disk is full: changes to /workspace, /tmp and home "
                f"share {lim.workspace_mib} MiB]\n"
            ).encode()
        if cut:
            stderr += f"\n[shipmate: output cut: {cut} bytes were not kept]\n".encode()
        return ExecResult(code, stdout, stderr, False, cut, wall, max(0.0, cpu))

    @staticmethod
    def _kill(process: asyncio.subprocess.Process, group: limits.CgroupSet) -> None:
        # bwrap's PID-namespace init gets SIGKILL when bwrap dies (--die-with-parent), which
        # takes every process in the namespace with it; the cgroup kill is the backstop.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        group.kill_all()

    def _cgroup(self) -> limits.CgroupSet:
        """The sandbox's cgroup, made on first use and kept until `close`."""
        if self._group is None:
            lim = self.spec.limits
            self._group = limits.create(lim.memory_mib, lim.max_processes, self.cgroup_root)
        return self._group

    def _limited(self, argv: list[str], group: limits.CgroupSet) -> list[str]:
        """Enter the cgroup and set rlimits in a tiny shell that then becomes bwrap: every
        process of the sandbox starts inside its limits (no fork escapes a late move)."""
        lim = self.spec.limits
        steps = [f'echo $$ > "{procs}"' for procs in group.procs_files()]
        if lim.workspace_mib:
            steps.append(f"ulimit -f {lim.workspace_mib * 1024 * 2}")  # 512-byte blocks
        if group.kind == "none" and lim.memory_mib:
            steps.append(f"ulimit -v {lim.memory_mib * 1024}")
        if group.kind == "none" and lim.max_processes:
            # RLIMIT_NPROC, counted per user namespace: this sandbox's processes only. bash
            # spells it -u, dash -p.
            n = lim.max_processes
            steps.append(f"{{ ulimit -u {n} 2>/dev/null || ulimit -p {n}; }}")
        script = " && ".join([*steps, 'exec "$@"'])
        return ["/bin/sh", "-c", script, "sandbox", *argv]

    async def close(self) -> None:
        self.closed = True
        if self._holder is not None:
            if self._holder.stdin is not None:
                self._holder.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._holder.pid, signal.SIGKILL)  # the holder and its bridge
            await self._holder.wait()
            self._holder = None
        if self._group is not None:
            self._group.kill_all()
            self._group.remove()
            self._group = None
        shutil.rmtree(self._scratch, ignore_errors=True)

    async def __aenter__(self) -> BwrapSandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _drain_fd(fd: int) -> bytes:
    """Whatever is waiting in the pipe `fd` (never blocks: a process inside may hold the other
    end), then close it."""
    os.set_blocking(fd, False)
    data = bytearray()
    try:
        while chunk := os.read(fd, 65536):
            data += chunk
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    return bytes(data)


def _exec_failure(stderr: bytes) -> int | None:
    """The shell's exit code when bwrap set the sandbox up but could not run the command (127:
    not found, 126: not executable), else None."""
    for line in stderr.decode("utf-8", "replace").splitlines():
        if line.startswith("bwrap: execvp "):
            return 127 if line.endswith("No such file or directory") else 126
    return None


def _start_failure(code: int, stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    reason = next((line for line in reversed(lines) if line), "no message")
    return f"the sandbox did not start (exit {code}): {reason}"


class _Capture:
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


async def _collect(
    process: asyncio.subprocess.Process,
    stdin: bytes | None,
    captured: tuple[_Capture, _Capture],
) -> None:
    """Feed stdin, then read both pipes to the end into `captured` and wait for the process."""

    async def drain(stream: asyncio.StreamReader | None, capture: _Capture) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            capture.feed(chunk)

    if stdin is not None and process.stdin is not None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.write(stdin)
            await process.stdin.drain()
        process.stdin.close()
    await asyncio.gather(drain(process.stdout, captured[0]), drain(process.stderr, captured[1]))
    await process.wait()
