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
import itertools
import marshal
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.sandbox import identity, limits, seccomp
from bot.sandbox.base import (
    DEFAULT_TIMEOUT_SECONDS,
    EXIT_TIMEOUT,
    ExecResult,
    ImageRoot,
    Limits,
    SandboxSpec,
    SandboxUnavailable,
)
from bot.sandbox.identity import SandboxIdentity
from bot.sandbox.request import Capture, Pipes, render, render_holder, seal_script

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
# The sandbox's own users, not the host's list: `id` inside shows `sandbox`, whoever runs
# Shipmate, and no host account name is read from inside.
INSIDE_UID = 1000
PASSWD = (
    "root:x:0:0:root:/root:/usr/sbin/nologin\n"
    f"sandbox:x:{INSIDE_UID}:{INSIDE_UID}:Shipmate sandbox:/home/sandbox:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUP = f"root:x:0:\nsandbox:x:{INSIDE_UID}:\nnogroup:x:65534:\n"
DISK_FULL_BYTES = 1024 * 1024
HOLDER = Path(__file__).with_name("holder.py")
ROOT_LINKS_OR_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Top-level folders an image's WorkingDir may not be (the checkout would hide them).
SYSTEM_TOPS = (*ROOT_LINKS_OR_DIRS, "usr", "etc", "proc", "dev", "sys", "run", "var", "boot")
PINNED_ENV = ("HOME", "TMPDIR", "SHIPMATE_SANDBOX", "PYTHONDONTWRITEBYTECODE")


def image_workdir(image: ImageRoot | None) -> str:
    """Where an image's commands start: its WorkingDir, which then shows the checkout as
    `docker run -v "$PWD:$WORKDIR" -w "$WORKDIR"` would; "" (/workspace) when it names none, or
    a system folder that showing the checkout there would hide."""
    if image is None or not image.workdir.startswith("/"):
        return ""
    parts = [part for part in image.workdir.split("/") if part]
    if not parts or "." in parts or ".." in parts or parts[0] in SYSTEM_TOPS:
        return ""
    path = "/" + "/".join(parts)
    return "" if path in (INSIDE_WORKSPACE, INSIDE_HOME, INSIDE_TMP) else path


def find_bwrap(explicit: str | None = None) -> str:
    path = explicit or shutil.which("bwrap")
    if path is None or not os.access(path, os.X_OK):
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed: apt-get install bubblewrap; "
            "Shipmate never runs commands unsandboxed"
        )
    return path


@functools.cache
def _system() -> tuple[tuple[str, str, str], ...]:
    """The host's system folders as the sandbox's root shows them: (bind | symlink, source,
    path inside)."""
    entries = [("bind", "/usr", "/usr")]
    for name in ROOT_LINKS_OR_DIRS:
        path = Path("/") / name
        if path.is_symlink():
            entries.append(("symlink", os.readlink(path), f"/{name}"))
        elif path.is_dir():
            entries.append(("bind", str(path), f"/{name}"))
    return tuple(entries)


@functools.cache
def _etc_entries() -> tuple[str, ...]:
    return tuple(name for name in ETC_ALLOW if (Path("/etc") / name).exists())


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
        self._scratch = Path(tempfile.mkdtemp(prefix=f"shipmate-{spec.task_id}-"))
        # The task's disk: a size-capped tmpfs mounted here in a user and mount namespace of
        # the sandbox's own (see `_start_holder`); the root tree, /tmp, home and the overlay's
        # upper layer live on it, so a task cannot fill the host's disk and leaves nothing
        # behind. Requests to the holder and the commands' FIFOs live in `_io`.
        self._disk = self._scratch / "disk"
        self._disk.mkdir()
        self._io = self._scratch / "io"
        self._io.mkdir()
        (self._io / "seccomp").write_bytes(self._seccomp)
        if self._owner is not None:
            # The holder drops to the sandbox uid: it works in these (and mounts the disk here).
            for path in (self._scratch, self._disk, self._io, self._io / "seccomp"):
                os.chown(path, *self._owner)
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
        args = [
            # The holder's own bind of it: the sandbox uid need not reach our bwrap's folder.
            str(self._scratch / "stage" / "bwrap"),
            "--json-status-fd",
            "3",
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
            str(self.spec.image.uid if self.spec.image else INSIDE_UID),
            "--gid",
            str(self.spec.image.gid if self.spec.image else INSIDE_UID),
            # Filtered from the start: no file gets a setuid or setgid bit (bot/sandbox/seccomp.py).
            "--seccomp",
            "4",
            # Devices: only the ones the holder bound under /dev; everything else it mounted is
            # nodev, and a user namespace cannot make device nodes.
            "--dev-bind",
            str(self.root),
            "/",
            "--proc",
            "/proc",
            "--chdir",
            image_workdir(self.spec.image) or INSIDE_WORKSPACE,
            "--clearenv",
        ]
        for key, value in env.items():
            args += ["--setenv", key, value]
        return [*args, "--", *command]

    def _layout(self, control_fd: int, group: limits.CgroupSet, idmap_fd: int) -> dict[str, object]:
        cap = self.spec.limits.workspace_mib
        binds = [[str(host), inside, "ro"] for host, inside in self.spec.ro_binds.items()]
        layers = [[str(host), inside] for host, inside in self.spec.layered_binds.items()]
        if self._sealed:  # sealed before any command ran: layered from the start
            layers += [[str(host), inside] for host, inside in self.spec.rw_binds.items()]
        else:
            binds += [[str(host), inside, "rw"] for host, inside in self.spec.rw_binds.items()]
        image = self.spec.image
        return {
            "disk": str(self._disk),
            "bwrap": self.bwrap,
            "tmpfs": "mode=0700" + (f",size={cap}m" if cap else ""),
            "lower": str(self.spec.overlay_lower or ""),
            "workspace": str(self.spec.workspace),
            "system": [] if image else [list(entry) for entry in _system()],
            "etc": [] if image else list(_etc_entries()),
            "users": [] if image else [PASSWD, GROUP],  # an image has its own
            "image": str(image.rootfs) if image else "",
            "workdir": image_workdir(image),
            "ca_bundle": str(self.ca_bundle or ""),
            "binds": binds,
            "layers": layers,
            "port": self.bridge_port or 0,
            "control_fd": control_fd,
            "io": str(self._io),
            "rlimits": self._rlimits(group),
            "uid": self.user.uid,
            "gid": self.user.gid,
            "idmap_fd": idmap_fd,
        }

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
                await asyncio.to_thread(self._hand_over)
            group = self._cgroup()
            idmap_fd = identity.idmap_userns(self.user) if self._owner is not None else -1
            ours, theirs = socket.socketpair()
            layout = self._layout(theirs.fileno(), group, idmap_fd)
            try:
                holder = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-I",
                    "-S",
                    str(HOLDER),
                    marshal.dumps(layout).hex(),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                    pass_fds=(theirs.fileno(), *([idmap_fd] if idmap_fd >= 0 else [])),
                    # The holder's shell is the parent of every bwrap, whose PID 1 keeps the
                    # environment it was started with (readable in /proc/1/environ): ours stays
                    # out of it, and so does our working directory.
                    env=SPAWN_ENV,
                    cwd="/",
                )
            except OSError as exc:
                ours.close()
                raise SandboxUnavailable(
                    f"could not start the sandbox's namespace holder: {exc}"
                ) from exc
            finally:
                theirs.close()
            # Into the sandbox's cgroups (a v1 move waits for an RCU grace period) while it
            # builds the root tree, and before it forks any command.
            joining = asyncio.ensure_future(asyncio.to_thread(group.join, holder.pid))
            try:
                with ours:
                    await self._holder_ready(holder, ours)
            finally:
                (moved,) = await asyncio.gather(joining, return_exceptions=True)
            if isinstance(moved, BaseException):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(holder.pid, signal.SIGKILL)
                await holder.wait()
                raise SandboxUnavailable(f"could not move the sandbox into its cgroups: {moved}")
            self._holder = holder
            self._exited = asyncio.create_task(holder.wait())
            return holder

    def _hand_over(self) -> None:
        """The host folders the sandbox writes in place (the workspace when it is not an
        overlay, the read-write binds) become the sandbox uid's, without setuid or setgid
        bits: it writes there as that uid (documented for `sandbox exec --workdir`)."""
        assert self._owner is not None
        folders = list(self.spec.rw_binds)
        if self.spec.overlay_lower is None:
            folders.append(self.spec.workspace)
        for folder in folders:
            identity.give(folder, *self._owner)

    async def _holder_ready(
        self, holder: asyncio.subprocess.Process, control: socket.socket
    ) -> None:
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
            raise SandboxUnavailable(_start_failure(err, holder.returncode or 0))
        if self.bridge_port and self.serve_bridge is not None:
            # Sent before `ready`: already waiting in the socket.
            control.setblocking(False)
            _, fds, _, _ = socket.recv_fds(control, 16, 1)
            await self.serve_bridge(socket.socket(fileno=fds[0]))

    def _request(self, holder: asyncio.subprocess.Process, name: str) -> None:
        """Ask the holder to run request `name` (its pipe has room: a line per command)."""
        assert holder.stdin is not None
        try:
            holder.stdin.write(f"{name}\n".encode())
        except (BrokenPipeError, ConnectionResetError, RuntimeError) as exc:
            raise SandboxUnavailable("the sandbox's namespace holder exited") from exc

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
        if self.spec.image is not None:
            # The image's own PATH, LANG, toolchain homes...; never our private folders' names.
            env.update((k, v) for k, v in self.spec.image.env if k not in PINNED_ENV)
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
        if timeout is None:
            timeout = DEFAULT_TIMEOUT_SECONDS
        group = self._cgroup()
        started = time.monotonic()
        cpu_before, oom_before = group.cpu_seconds(), group.oom_kills()
        holder = await self._start_holder()
        self.running = tuple(argv)
        name = f"r{next(self._ids)}"
        captured = (Capture(lim.output_bytes // 2), Capture(lim.output_bytes // 2))
        pipes = Pipes(self._io, name, *captured, owner=self._owner)
        stdin_path = self._io / f"{name}.in"
        script = self._io / name
        try:
            if stdin is not None:
                self._write(stdin_path, stdin)
            text = render(
                stdin=str(stdin_path) if stdin is not None else os.devnull,
                stdout=pipes.paths["out"],
                stderr=pipes.paths["err"],
                status=pipes.paths["status"],
                argv=self.argv(argv, self.environment(env)),
                seccomp=str(self._io / "seccomp"),
            )
            self._write(script, text.encode())
            self._request(holder, name)
            timed_out = await self._wait(pipes, group, holder.pid, allowed=timeout)
            status = pipes.status()
            if status.pid is None and holder.returncode is not None:
                raise SandboxUnavailable(
                    f"the sandbox's namespace holder exited ({holder.returncode}) before the "
                    "command started"
                )
        finally:
            group.kill_all(spare=holder.pid)
            self.running = None
            oom = group.oom_kills() > oom_before  # this command's, not an earlier one's
            pipes.close()
            for path in (script, stdin_path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        wall = time.monotonic() - started
        cpu_after = group.cpu_seconds()
        # The cgroup counts every process of the command; without one there is no count (bwrap
        # does not always reap the sandbox's init, so no parent's rusage has it either).
        cpu = 0.0
        if cpu_before is not None and cpu_after is not None:
            cpu = max(0.0, cpu_after - cpu_before)
        self.wall_seconds += wall
        self.cpu_seconds += cpu
        (stdout, cut_out), (stderr, cut_err) = captured[0].result(), captured[1].result()
        cut = cut_out + cut_err
        if timed_out:
            note = f"\n[shipmate: killed after {timeout:g} s: the command timed out]\n"
            return ExecResult(EXIT_TIMEOUT, stdout, stderr + note.encode(), True, cut, wall, cpu)
        code = status.exit_code
        if code is None:
            # bwrap never reported the command's exit: it could not run it, or it was killed.
            not_run = _exec_failure(stderr)
            if not_run is not None:
                code = not_run
            elif oom or status.child_pid is not None:
                # The OOM killer took bwrap itself, or the sandbox had started and was killed
                # from outside (the holder going down, an operator): killed, not refused.
                code = 128 + signal.SIGKILL
                if not oom:
                    stderr += b"\n[shipmate: the sandbox was killed from outside]\n"
            else:
                raise SandboxUnavailable(_start_failure(stderr))
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
        return ExecResult(code, stdout, stderr, False, cut, wall, cpu)

    def _write(self, path: Path, data: bytes) -> None:
        """A file in `_io` for the holder to read (it is the sandbox uid when we are root)."""
        path.write_bytes(data)
        if self._owner is not None:
            os.chown(path, *self._owner)

    async def seal(self) -> None:
        """From now on the read-write binds (the dependency cache while `setup:` filled it)
        are read-only for every command, under a layer on the task's disk that is dropped with
        the sandbox: the holder remounts each bind read-only and mounts an overlay on it."""
        if self._sealed:
            return
        self._sealed = True
        if not self.spec.rw_binds or self._holder is None:
            return  # no command has run: the holder will start with them layered
        holder = self._holder
        name = f"r{next(self._ids)}"
        err = Capture(4096)
        pipes = Pipes(self._io, name, Capture(4096), err, owner=self._owner)
        try:
            script = render_holder(
                stdout=pipes.paths["out"],
                stderr=pipes.paths["err"],
                status=pipes.paths["status"],
                script=seal_script(list(self.spec.rw_binds.values())),
            )
            self._write(self._io / name, script.encode())
            self._request(holder, name)
            await self._wait(pipes, self._cgroup(), holder.pid, allowed=30)
            code = pipes.status().exit_code
        finally:
            pipes.close()
            with contextlib.suppress(FileNotFoundError):
                (self._io / name).unlink()
        if code != 0:
            reason = err.result()[0].decode("utf-8", "replace").strip() or f"exit {code}"
            raise SandboxUnavailable(f"could not make the dependency cache read-only: {reason}")

    async def _wait(
        self, pipes: Pipes, group: limits.CgroupSet, holder: int, *, allowed: float | None
    ) -> bool:
        """Wait for the command to finish; True when it ran out of time (and was killed)."""
        finished = pipes.done()
        exited = self._exited
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
            self._kill(pipes, group, holder)
            # What the command wrote before the kill is kept: read the FIFOs to their end.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(finished), 5)
            return True
        except asyncio.CancelledError:
            # The caller gave up (a cancelled run): the command must not outlive it.
            self._kill(pipes, group, holder)
            raise
        finally:
            if not finished.done():
                finished.cancel()

    @staticmethod
    def _kill(pipes: Pipes, group: limits.CgroupSet, holder: int) -> None:
        # The request's subshell became bwrap, and bwrap's sandbox init dies with bwrap
        # (--die-with-parent), taking every process in its PID namespace with it; the init is
        # killed itself too, and the cgroup kill is the backstop.
        status = pipes.status()
        for pid in (status.child_pid, status.pid):
            if pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        group.kill_all(spare=holder)

    def _cgroup(self) -> limits.CgroupSet:
        """The sandbox's cgroup, made on first use and kept until `close`."""
        if self._group is None:
            lim = self.spec.limits
            self._group = limits.create(lim.memory_mib, lim.max_processes, self.cgroup_root)
        return self._group

    def _rlimits(self, group: limits.CgroupSet) -> dict[str, int]:
        """The rlimits the holder takes for every command: a file-size cap always (writes to a
        host folder are not on the task's disk), and memory and process counts when no cgroup
        holds them (RLIMIT_NPROC is counted per user namespace: this sandbox's processes)."""
        lim = self.spec.limits
        none = group.kind == "none"
        return {
            "fsize": (lim.workspace_mib or 0) * 1024 * 1024,
            "as": (lim.memory_mib or 0) * 1024 * 1024 if none else 0,
            "nproc": (lim.max_processes or 0) if none else 0,
        }

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


def _exec_failure(stderr: bytes) -> int | None:
    """The shell's exit code when bwrap set the sandbox up but could not run the command (127:
    not found, 126: not executable), else None."""
    for line in stderr.decode("utf-8", "replace").splitlines():
        if line.startswith("bwrap: execvp "):
            return 127 if line.endswith("No such file or directory") else 126
    return None


def _start_failure(stderr: bytes, code: int | None = None) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    reason = next((line for line in reversed(lines) if line), "no message")
    return f"the sandbox did not start{f' (exit {code})' if code is not None else ''}: {reason}"
