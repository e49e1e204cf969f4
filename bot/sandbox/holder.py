"""The sandbox's namespace holder, run as `python -I -S holder.py LAYOUT` under
`unshare --user --map-root-user --mount --net`.

It builds, once per sandbox, everything its commands share: a size-capped tmpfs (the task's
disk) holding the sandbox's whole root tree (the host's system folders read-only, a copy of the
allowlisted /etc entries with the CA bundle, a minimal /dev, /tmp, home and /workspace — the
checkout's copy-on-write overlay — and any extra binds), so that each command's bwrap needs only
one recursive bind and a /proc; the loopback, with the egress proxy's listening socket on it
(made here, inside the network namespace, and handed to Shipmate over `control_fd`); then says
`ready` and becomes a small shell that holds the namespaces and starts each command.

Before that it joins the sandbox's cgroups and takes its rlimits. The shell reads a request id
per line on stdin and runs the request file `<io>/<id>` (a script Shipmate wrote: redirect to
the command's FIFOs, become bwrap) in a forked subshell, already inside every namespace and
limit: no nsenter, no extra shell and no cgroup move per command. When stdin closes, every
process it started is killed.

Standard library only, and one process; it imports little (LAYOUT is a hex-encoded `marshal` of
a dict of strings, numbers and lists, not JSON, and `_socket` stands in for `socket`): it starts
in a few tens of milliseconds.
"""

from __future__ import annotations

import _socket
import _thread
import ctypes
import fcntl
import marshal
import os
import resource
import struct
import sys

# `typing` alone would cost this process 7 ms at start; the checkers read the names from here.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
ST_RELATIME = 4096
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "fd": "/proc/self/fd",
    "core": "/proc/kcore",
    "ptmx": "pts/ptmx",
}
KEY_FOLDERS = ("private",)  # /etc/ssl/private
# The task's own folders on its disk, and where the sandbox sees them.
PRIVATE = (("tmp", "tmp"), ("home", "home/sandbox"), ("shm", "dev/shm"))
# The shell that holds the namespaces. `( . file ) &` forks a subshell (no exec) that runs the
# request; dash reaps finished subshells each time it forks the next one.
LOOP = 'exec >/dev/null 2>&1; while read -r id; do ( . "$1/$id" ) & done; kill -9 0'


def mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(
        source.encode(), target.encode(), fstype.encode() if fstype else None, flags, data.encode()
    ):
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source or fstype} on {target}: {os.strerror(errno)}")


def bind(source: str, target: str, *, read_only: bool, devices: bool = False) -> None:
    """Bind `source` on `target` (not its submounts), nosuid, nodev unless `devices`."""
    if not os.path.exists(source):
        raise OSError(f"Can't find source path {source}: No such file or directory")
    mount(source, target, None, MS_BIND)
    # Keep the flags the kernel locked on the original mount (noexec, atime...), add ours.
    stat = os.statvfs(target)
    kept = stat.f_flag & (MS_NOEXEC | MS_NOATIME | MS_NODIRATIME)
    relatime = MS_RELATIME if stat.f_flag & ST_RELATIME else 0
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | kept | relatime
    flags |= (MS_RDONLY if read_only else 0) | (0 if devices else MS_NODEV)
    mount("", target, None, flags)


def loopback_up() -> None:
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        ifreq = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, struct.pack("16sH22x", b"lo", 0))
        flags = struct.unpack("16sH22x", ifreq)[1] | IFF_UP
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags))
    finally:
        s.close()


def mount_point(path: str, like: str) -> None:
    """An empty directory, or an empty file when `like` is a file, at `path`."""
    if os.path.isdir(like):
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            open(path, "w").close()


def copy_file(source: str, target: str) -> None:
    try:
        with open(source, "rb") as src:
            data = src.read()
    except PermissionError:
        return  # not readable by us: not for the sandbox either
    with open(target, "wb") as dst:
        dst.write(data)


def copy(source: str, target: str) -> None:
    """`source` at `target`: symlinks as symlinks, folders without their key folders."""
    if os.path.islink(source):
        os.symlink(os.readlink(source), target)
    elif os.path.isdir(source):
        os.mkdir(target)
        for entry in os.scandir(source):
            if entry.name not in KEY_FOLDERS:
                copy(entry.path, f"{target}/{entry.name}")
    elif os.path.isfile(source):
        copy_file(source, target)


def copy_etc(root: str, entries: list[str], ca_bundle: str) -> None:
    """A copy of the allowlisted /etc entries, with the sandbox's CA bundle. Copied, not bound:
    every mount here would be parsed again by each command's bwrap."""
    os.makedirs(f"{root}/etc", exist_ok=True)  # an image's own /etc is there already
    for name in entries:
        copy(f"/etc/{name}", f"{root}/etc/{name}")
    if ca_bundle:
        target = f"{root}/etc/ssl/certs/ca-certificates.crt"
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.lexists(target):
            os.unlink(target)
        copy_file(ca_bundle, target)


def overlay(lower: str, folder: str) -> str:
    """`folder`/merged: `lower` with writes going to `folder`/upper on the tmpfs."""
    for name in ("upper", "work", "merged"):
        os.makedirs(f"{folder}/{name}", exist_ok=True)
    layers = f"lowerdir={lower},upperdir={folder}/upper,workdir={folder}/work"
    mount("overlay", f"{folder}/merged", "overlay", MS_NOSUID | MS_NODEV, layers)
    return f"{folder}/merged"


def listener(port: int, control_fd: int) -> None:
    """The egress proxy's listening socket on this namespace's loopback, handed to Shipmate."""
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    control = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, control_fd)
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", sock.fileno()))]
        control.sendmsg([b"L"], rights)
    finally:
        sock.close()
        control.close()


def real_dirs(root: str, inside: str) -> None:
    """Every folder of `inside` under `root` a real folder, made where missing: an image's
    symlink or file in the way is removed (from the task's overlay only), never followed — the
    holder sees the host's tree, so a link an image put at /home or /tmp would point there."""
    path = root
    parts = [part for part in inside.split("/") if part]
    if "." in parts or ".." in parts:
        raise OSError(f"not a path inside the sandbox: {inside}")
    for part in parts:
        path = f"{path}/{part}"
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            os.unlink(path)
        if not os.path.lexists(path):
            os.mkdir(path)


def image_root(root: str, image: str, disk: str, mounts: list[tuple[str, str]]) -> None:
    """The root tree from an image's rootfs: a copy-on-write overlay over it, its writes on the
    task's disk; the mount points of the skeleton and of `mounts` (source, path inside) made
    safe to use, and the skeleton's own /dev entries cleared."""
    upper = f"{disk}/image"
    for name in ("upper", "work"):
        os.makedirs(f"{upper}/{name}")
    layers = f"lowerdir={image},upperdir={upper}/upper,workdir={upper}/work"
    mount("overlay", root, "overlay", MS_NOSUID | MS_NODEV, layers)
    for inside in ("etc/ssl/certs", "proc", "workspace", "dev/pts"):
        real_dirs(root, inside)
    for source, inside in mounts:
        if os.path.isdir(source):
            real_dirs(root, inside)
            continue
        real_dirs(root, os.path.dirname(inside))
        target = f"{root}/{inside.strip('/')}"
        if os.path.islink(target):
            os.unlink(target)
        elif os.path.isdir(target):
            os.rmdir(target)
    for name in (*DEVICES, *DEV_LINKS):
        path = f"{root}/dev/{name}"
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            os.unlink(path)
        elif os.path.isdir(path):
            os.rmdir(path)  # a folder an image put there; an empty one is all it may be


def build(
    *,
    disk: str,
    tmpfs: str,
    lower: str,
    workspace: str,
    system: list[list[str]],
    etc: list[str],
    ca_bundle: str,
    binds: list[list[str]],
    layers: list[list[str]],
    image: str = "",
    workdir: str = "",
) -> None:
    root = f"{disk}/root"
    mount("shipmate", disk, "tmpfs", MS_NOSUID | MS_NODEV, tmpfs)
    for data, _ in PRIVATE:
        os.mkdir(f"{disk}/{data}")
    os.mkdir(root)
    if image:
        mounts = [(f"{disk}/{data}", inside) for data, inside in PRIVATE]
        mounts += [(entry[0], entry[1]) for entry in binds + layers]
        image_root(root, image, disk, mounts + ([(disk, workdir)] if workdir else []))
    if lower:
        workspace = overlay(lower, disk)
    merged = [
        (overlay(source, f"{disk}/layers/{index}"), inside)
        for index, (source, inside) in enumerate(layers)
    ]
    # The skeleton, on the tmpfs; the root is made read-only once everything is mounted.
    for kind, source, inside in system:
        if kind == "symlink":
            os.symlink(source, f"{root}{inside}")
        else:
            os.makedirs(f"{root}{inside}")
    copy_etc(root, etc, ca_bundle)
    for name in ("proc", "workspace", "dev/pts", *(inside for _, inside in PRIVATE)):
        os.makedirs(f"{root}/{name}", exist_ok=True)
    for name in DEVICES:
        open(f"{root}/dev/{name}", "w").close()
    for name, target in DEV_LINKS.items():
        os.symlink(target, f"{root}/dev/{name}")
    mount(root, root, None, MS_BIND)
    for kind, source, inside in system:
        if kind == "bind":
            bind(source, f"{root}{inside}", read_only=True)
    for name in DEVICES:
        bind(f"/dev/{name}", f"{root}/dev/{name}", read_only=False, devices=True)
    mount("devpts", f"{root}/dev/pts", "devpts", MS_NOSUID, "newinstance,ptmxmode=0666,mode=620")
    for data, inside in PRIVATE:
        bind(f"{disk}/{data}", f"{root}/{inside}", read_only=False)
    bind(workspace, f"{root}/workspace", read_only=False)
    if workdir:
        bind(workspace, f"{root}{workdir}", read_only=False)  # the image's WorkingDir
    extra = [(source, inside, mode == "ro") for source, inside, mode in binds]
    extra += [(source, inside, False) for source, inside in merged]
    # Parents before children: a bind inside another one lands on top of it.
    for source, inside, read_only in sorted(extra, key=lambda entry: entry[1].count("/")):
        mount_point(f"{root}{inside}", source)
        bind(source, f"{root}{inside}", read_only=read_only)
    if not image:  # an image's root stays writable: its writes land on the task's disk
        mount("", root, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def join(procs: list[str]) -> Callable[[], None]:
    """Join the sandbox's cgroups from a second thread (writing 0 to `cgroup.procs` moves the
    whole process): on cgroup v1 the move waits for an RCU grace period, 5 to 15 ms, which then
    passes while the root tree is built. Returns the wait for it, which re-raises its error."""
    done = _thread.allocate_lock()
    failed: list[OSError] = []

    def run() -> None:
        try:
            for path in procs:
                with open(path, "w") as file:
                    file.write("0")
        except OSError as exc:
            failed.append(exc)
        finally:
            done.release()

    done.acquire()
    _thread.start_new_thread(run, ())

    def wait() -> None:
        done.acquire()
        if failed:
            raise failed[0]

    return wait


def confine(rlimits: dict[str, int]) -> None:
    """Take the sandbox's rlimits: every command is forked from here, so it starts inside them
    (as inside the cgroups), and no command pays for a move into a cgroup."""
    for name, value in rlimits.items():
        if value:
            resource.setrlimit(getattr(resource, f"RLIMIT_{name.upper()}"), (value, value))


def main(argv: list[str]) -> NoReturn:
    layout = marshal.loads(bytes.fromhex(argv[0]))  # noqa: S302 - written by our parent
    port, control_fd, io = layout.pop("port"), layout.pop("control_fd"), layout.pop("io")
    procs, rlimits = layout.pop("procs"), layout.pop("rlimits")
    joined = join(procs)
    loopback_up()
    build(**layout)
    if port:
        listener(int(port), int(control_fd))
    else:
        os.close(int(control_fd))  # not for the commands to inherit
    joined()
    confine(rlimits)
    print("ready", flush=True)
    os.execv("/bin/sh", ["/bin/sh", "-c", LOOP, "holder", str(io)])  # noqa: S606


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except OSError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
