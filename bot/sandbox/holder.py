"""The sandbox's namespace holder, run as `python -I -S holder.py LAYOUT` (LAYOUT: a hex-encoded
`marshal` of a dict of strings, numbers and lists; standard library only, one process, few
imports: it starts in a few tens of milliseconds).

It makes its own user, mount and network namespaces, in which it is root and, outside, the
sandbox uid (bot/sandbox/identity.py), never host root. Started as root, it first binds each
host folder the sandbox gets under `stage/` in a mount namespace of its own (so the sandbox uid
need not be able to reach them: a checkout under /root), giving a tree to overlay that the uid
does not own an idmapped mount (its files show as the uid's, so the task may change them in its
layer while the tree stays root's), then drops to the sandbox uid for good.

Then it builds, once per sandbox, everything its commands share: a size-capped tmpfs (the task's
disk) holding the sandbox's whole root tree (the host's system folders read-only, a copy of the
allowlisted /etc entries with the CA bundle, a minimal /dev, /tmp, home and /workspace — the
checkout's copy-on-write overlay — and any extra binds; every writable mount nosuid and nodev),
so that each command's bwrap needs only one recursive bind and a /proc; the loopback, with the
egress proxy's listening socket on it (handed to Shipmate over `control_fd`); takes the
sandbox's rlimits, says `ready` and becomes a small shell that holds the namespaces and starts
each command. Shipmate has moved it into the sandbox's cgroups meanwhile.

The shell reads a request id per line on stdin and runs the request file `<io>/<id>` (a script
Shipmate wrote: redirect to the command's FIFOs, become bwrap) in a forked subshell, already
inside every namespace and limit: no nsenter, no extra shell and no cgroup move per command.
When stdin closes, every process it started is killed.
"""

from __future__ import annotations

import _socket
import fcntl
import marshal
import os
import resource
import struct
import sys

# `typing` alone would cost this process 7 ms at start; the checkers read the names from here.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    import bot.sandbox.image_root as image_root
    import bot.sandbox.mounts as mounts
else:
    sys.path.insert(0, os.path.dirname(__file__))  # -I leaves our own folder out
    import image_root
    import mounts

SAFE = mounts.MS_NOSUID | mounts.MS_NODEV  # every writable mount
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


def loopback_up() -> None:
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        ifreq = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, struct.pack("16sH22x", b"lo", 0))
        flags = struct.unpack("16sH22x", ifreq)[1] | IFF_UP
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags))
    finally:
        s.close()


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


def copy_etc(root: str, entries: list[str], ca_bundle: str, users: list[str]) -> None:
    """A copy of the allowlisted /etc entries, the sandbox's own passwd and group (`users`,
    when given) and its CA bundle. Copied, not bound: every mount here would be parsed again by
    each command's bwrap."""
    os.makedirs(f"{root}/etc", exist_ok=True)  # an image's own /etc is there already
    for name in entries:
        copy(f"/etc/{name}", f"{root}/etc/{name}")
    for name, text in zip(("passwd", "group"), users, strict=False):
        with open(f"{root}/etc/{name}", "w") as handle:
            handle.write(text)
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
    mounts.mount("overlay", f"{folder}/merged", "overlay", SAFE, layers)
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


def image_points(disk: str, binds: list[list[str]], workdir: str) -> list[tuple[str, str]]:
    """(source, path inside) of every mount an image's root gets: the task's own folders, the
    binds and layers, the checkout again at the image's WorkingDir."""
    points = [(f"{disk}/{data}", inside) for data, inside in PRIVATE]
    points += [(entry[0], entry[1]) for entry in binds]
    return points + ([(disk, workdir)] if workdir else [])


def build(
    *,
    disk: str,
    tmpfs: str,
    lower: str,
    workspace: str,
    system: list[list[str]],
    etc: list[str],
    users: list[str],
    ca_bundle: str,
    binds: list[list[str]],
    layers: list[list[str]],
    image: str = "",
    workdir: str = "",
) -> None:
    root = f"{disk}/root"
    mounts.mount("shipmate", disk, "tmpfs", SAFE, tmpfs)
    for data, _ in PRIVATE:
        os.mkdir(f"{disk}/{data}")
    os.mkdir(root)
    if image:
        points = image_points(disk, binds + layers, workdir)
        image_root.lay_out(root, image, disk, points, (*DEVICES, *DEV_LINKS))
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
    copy_etc(root, etc, ca_bundle, users)
    for name in ("proc", "workspace", "dev/pts", *(inside for _, inside in PRIVATE)):
        os.makedirs(f"{root}/{name}", exist_ok=True)
    for name in DEVICES:
        open(f"{root}/dev/{name}", "w").close()
    for name, target in DEV_LINKS.items():
        os.symlink(target, f"{root}/dev/{name}")
    mounts.mount(root, root, None, mounts.MS_BIND)
    for kind, source, inside in system:
        if kind == "bind":
            mounts.bind(source, f"{root}{inside}", read_only=True)
    for name in DEVICES:
        mounts.bind(f"/dev/{name}", f"{root}/dev/{name}", read_only=False, devices=True)
    mounts.mount(
        "devpts",
        f"{root}/dev/pts",
        "devpts",
        mounts.MS_NOSUID,
        "newinstance,ptmxmode=0666,mode=620",
    )
    for data, inside in PRIVATE:
        mounts.bind(f"{disk}/{data}", f"{root}/{inside}", read_only=False)
    mounts.bind(workspace, f"{root}/workspace", read_only=False)
    if workdir:
        mounts.bind(workspace, f"{root}{workdir}", read_only=False)  # the image's WorkingDir
    extra = [(source, inside, mode == "ro") for source, inside, mode in binds]
    extra += [(source, inside, False) for source, inside in merged]
    # Parents before children: a bind inside another one lands on top of it.
    for source, inside, read_only in sorted(extra, key=lambda entry: entry[1].count("/")):
        mounts.mount_point(f"{root}{inside}", source)
        mounts.bind(source, f"{root}{inside}", read_only=read_only)
    if not image:  # an image's root stays writable: its writes land on the task's disk
        mounts.mount(
            "",
            root,
            None,
            mounts.MS_REMOUNT | mounts.MS_BIND | mounts.MS_RDONLY | SAFE,
        )


def stage(layout: dict[str, Any], uid: int, userns_fd: int) -> None:
    """Bind every host folder (and the CA bundle) the sandbox gets under `stage/`, and point
    `layout` at those: the root tree is built from here, with no host path in its mount
    options. Overlaid trees not owned by `uid` are idmapped when `userns_fd` is given."""
    os.mkdir("stage")
    count = iter(range(1 << 20))

    def put(source: str, *, read_only: bool, overlaid: bool = False) -> str:
        target = f"stage/{next(count)}"
        mounts.mount_point(target, source)
        if overlaid and userns_fd >= 0 and os.stat(source).st_uid != uid:
            mounts.idmapped(source, target, userns_fd)
        else:
            mounts.bind(source, target, read_only=read_only)
        return target

    mounts.mount_point("stage/bwrap", layout["bwrap"])
    mounts.bind(layout.pop("bwrap"), "stage/bwrap", read_only=True)
    if layout["lower"]:
        layout["lower"] = put(layout["lower"], read_only=True, overlaid=True)
    else:
        layout["workspace"] = put(layout["workspace"], read_only=False)
    if layout["ca_bundle"]:
        layout["ca_bundle"] = put(layout["ca_bundle"], read_only=True)
    if layout["image"]:  # shown as the uid's, as a checkout is: the image root is its layer
        layout["image"] = put(layout["image"], read_only=True, overlaid=True)
    layout["binds"] = [[put(a, read_only=m == "ro"), b, m] for a, b, m in layout["binds"]]
    layout["layers"] = [[put(a, read_only=True, overlaid=True), b] for a, b in layout["layers"]]


def confine(rlimits: dict[str, int]) -> None:
    """Take the sandbox's rlimits: every command is forked from here, so it starts inside them
    (as inside the cgroups), and no command pays for a move into a cgroup."""
    for name, value in rlimits.items():
        if value:
            resource.setrlimit(getattr(resource, f"RLIMIT_{name.upper()}"), (value, value))


def main(argv: list[str]) -> NoReturn:
    layout = marshal.loads(bytes.fromhex(argv[0]))  # noqa: S302 - written by our parent
    port, control_fd, io = layout.pop("port"), layout.pop("control_fd"), layout.pop("io")
    rlimits, uid, gid = layout.pop("rlimits"), layout.pop("uid"), layout.pop("gid")
    userns_fd = layout.pop("idmap_fd")
    # Relative paths from here: the mount options the sandbox can read name no host folder.
    os.chdir(os.path.dirname(layout["disk"]))
    layout["disk"] = os.path.basename(layout["disk"])
    if os.geteuid() == 0:
        mounts.unshare(mounts.CLONE_NEWNS)
        mounts.mount("none", "/", None, mounts.MS_REC | mounts.MS_PRIVATE)
        stage(layout, uid, userns_fd)
        mounts.drop(uid, gid)
        mounts.enter(uid, gid)
    else:
        mounts.enter(uid, gid)
        stage(layout, uid, -1)
    if userns_fd >= 0:
        os.close(userns_fd)
    loopback_up()
    build(**layout)
    if port:
        listener(int(port), int(control_fd))
    else:
        os.close(int(control_fd))  # not for the commands to inherit
    confine(rlimits)
    print("ready", flush=True)
    os.execv("/bin/sh", ["/bin/sh", "-c", LOOP, "holder", str(io)])  # noqa: S606


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except OSError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
