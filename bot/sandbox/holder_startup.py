"""Starting a sandbox's namespace holder (bot/sandbox/holder.py) from Shipmate: the layout it is
given (what its root tree holds, the rlimits it takes), the host folders handed over to the
sandbox uid, the process itself with none of our environment, its move into the sandbox's
cgroups while it builds the root tree, its `ready`, and the loopback listening socket it hands
back for the egress proxy."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import marshal
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from bot.sandbox import identity, limits, outcome
from bot.sandbox.base import Limits, SandboxSpec, SandboxUnavailable
from bot.sandbox.command_line import INSIDE_UID, PATH, ROOT_LINKS_OR_DIRS, image_workdir
from bot.sandbox.identity import SandboxIdentity

SPAWN_ENV = {"PATH": PATH, "LC_ALL": "C"}
HOLDER = Path(__file__).with_name("holder.py")
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
PASSWD = (
    "root:x:0:0:root:/root:/usr/sbin/nologin\n"
    f"sandbox:x:{INSIDE_UID}:{INSIDE_UID}:Shipmate sandbox:/home/sandbox:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUP = f"root:x:0:\nsandbox:x:{INSIDE_UID}:\nnogroup:x:65534:\n"

# Given the listening socket the holder made on the sandbox's loopback.
Bridge = Callable[[socket.socket], Awaitable[None]]


@functools.cache
def system_entries() -> tuple[tuple[str, str, str], ...]:
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
def etc_entries() -> tuple[str, ...]:
    return tuple(name for name in ETC_ALLOW if (Path("/etc") / name).exists())


def rlimits(lim: Limits, group: limits.CgroupSet) -> dict[str, int]:
    """The rlimits the holder takes for every command: a file-size cap always (writes to a
    host folder are not on the task's disk), and memory and process counts when no cgroup
    holds them (RLIMIT_NPROC is counted per user namespace: this sandbox's processes)."""
    none = group.kind == "none"
    return {
        "fsize": (lim.workspace_mib or 0) * 1024 * 1024,
        "as": (lim.memory_mib or 0) * 1024 * 1024 if none else 0,
        "nproc": (lim.max_processes or 0) if none else 0,
    }


def layout(
    spec: SandboxSpec,
    *,
    sealed: bool,
    disk: Path,
    io: Path,
    rlimits: dict[str, int],
    user: SandboxIdentity,
    bwrap: str,
    ca_bundle: Path | None,
    port: int | None,
) -> dict[str, object]:
    """What the holder builds and takes, but the descriptors `start` passes it."""
    cap = spec.limits.workspace_mib
    binds = [[str(host), inside, "ro"] for host, inside in spec.ro_binds.items()]
    layers = [[str(host), inside] for host, inside in spec.layered_binds.items()]
    if sealed:  # sealed before any command ran: layered from the start
        layers += [[str(host), inside] for host, inside in spec.rw_binds.items()]
    else:
        binds += [[str(host), inside, "rw"] for host, inside in spec.rw_binds.items()]
    image = spec.image
    return {
        "disk": str(disk),
        "bwrap": bwrap,
        "tmpfs": "mode=0700" + (f",size={cap}m" if cap else ""),
        "lower": str(spec.overlay_lower or ""),
        "workspace": str(spec.workspace),
        "system": [] if image else [list(entry) for entry in system_entries()],
        "etc": [] if image else list(etc_entries()),
        "users": [] if image else [PASSWD, GROUP],  # an image has its own
        "image": str(image.rootfs) if image else "",
        "workdir": image_workdir(image),
        "ca_bundle": str(ca_bundle or ""),
        "binds": binds,
        "layers": layers,
        "port": port or 0,
        "io": str(io),
        "rlimits": rlimits,
        "uid": user.uid,
        "gid": user.gid,
    }


def scratch(task_id: str, seccomp_program: bytes, owner: tuple[int, int] | None) -> Path:
    """The sandbox's scratch folder on the host. The task's disk: a size-capped tmpfs mounted
    at `disk` in a user and mount namespace of the sandbox's own (see `start`); the root tree,
    /tmp, home and the overlay's upper layer live on it, so a task cannot fill the host's disk
    and leaves nothing behind. Requests to the holder, the commands' FIFOs and the seccomp
    filter they start with live in `io`."""
    folder = Path(tempfile.mkdtemp(prefix=f"shipmate-{task_id}-"))
    disk, io = folder / "disk", folder / "io"
    disk.mkdir()
    io.mkdir()
    (io / "seccomp").write_bytes(seccomp_program)
    if owner is not None:
        # The holder drops to the sandbox uid: it works in these (and mounts the disk here).
        for path in (folder, disk, io, io / "seccomp"):
            os.chown(path, *owner)
    return folder


def hand_over(spec: SandboxSpec, owner: tuple[int, int]) -> None:
    """The host folders the sandbox writes in place (the workspace when it is not an
    overlay, the read-write binds) become the sandbox uid's, without setuid or setgid
    bits: it writes there as that uid (documented for `sandbox exec --workdir`)."""
    folders = list(spec.rw_binds)
    if spec.overlay_lower is None:
        folders.append(spec.workspace)
    for folder in folders:
        identity.give(folder, *owner)


async def start(
    holder_layout: Mapping[str, object],
    group: limits.CgroupSet,
    user: SandboxIdentity,
    bridge: Bridge | None,
) -> asyncio.subprocess.Process:
    """The holder for `holder_layout`, running, in `group`, and ready; `bridge` (when given)
    has its loopback listening socket."""
    idmap_fd = identity.idmap_userns(user) if user.switch else -1
    ours, theirs = socket.socketpair()
    try:
        full = {**holder_layout, "control_fd": theirs.fileno(), "idmap_fd": idmap_fd}
        holder = await _spawn(full, (theirs.fileno(), *([idmap_fd] if idmap_fd >= 0 else [])))
    except OSError as exc:
        ours.close()
        raise SandboxUnavailable(f"could not start the sandbox's namespace holder: {exc}") from exc
    finally:
        theirs.close()
    # Into the sandbox's cgroups (a v1 move waits for an RCU grace period) while it
    # builds the root tree, and before it forks any command.
    joining = asyncio.ensure_future(asyncio.to_thread(group.join, holder.pid))
    try:
        with ours:
            await _ready(holder, ours, bridge)
    finally:
        (moved,) = await asyncio.gather(joining, return_exceptions=True)
    if isinstance(moved, BaseException):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(holder.pid, signal.SIGKILL)
        await holder.wait()
        raise SandboxUnavailable(f"could not move the sandbox into its cgroups: {moved}")
    return holder


async def _spawn(
    holder_layout: dict[str, object], pass_fds: tuple[int, ...]
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-S",
        str(HOLDER),
        marshal.dumps(holder_layout).hex(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        pass_fds=pass_fds,
        # The holder's shell is the parent of every bwrap, whose PID 1 keeps the
        # environment it was started with (readable in /proc/1/environ): ours stays
        # out of it, and so does our working directory.
        env=SPAWN_ENV,
        cwd="/",
    )


async def _ready(
    holder: asyncio.subprocess.Process, control: socket.socket, bridge: Bridge | None
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
        raise SandboxUnavailable(outcome.start_failure(err, holder.returncode or 0))
    if bridge is not None:
        # Sent before `ready`: already waiting in the socket.
        control.setblocking(False)
        _, fds, _, _ = socket.recv_fds(control, 16, 1)
        await bridge(socket.socket(fileno=fds[0]))
