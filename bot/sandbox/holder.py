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
disk) holding the sandbox's whole root tree (bot/sandbox/root_tree.py); the loopback, with the
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

    import bot.sandbox.mounts as mounts
    import bot.sandbox.root_tree as root_tree
else:
    sys.path.insert(0, os.path.dirname(__file__))  # -I leaves our own folder out
    import mounts
    import root_tree

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1
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
    root_tree.build(**layout)
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
