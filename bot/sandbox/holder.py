"""The sandbox's namespace holder, run as `python -I -S holder.py ...` under
`unshare --user --map-root-user --mount --net`: sets up what every command of one sandbox shares
(the size-capped tmpfs, the checkout's overlay, a read-only /etc of allowlisted entries with the
CA bundle, the loopback and the egress bridge), says `ready`, then becomes a shell that holds the
namespaces until its stdin closes. Standard library only, and one process: it starts in a few
tens of milliseconds.

Arguments: TMPFS_OPTIONS DISK LOWER_OR_EMPTY SOCKET_OR_EMPTY PORT_OR_EMPTY CA_BUNDLE_OR_EMPTY
LAYERS_JSON (host folders to show writable, their writes kept on the tmpfs) ETC_ENTRY...
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import socket
import struct
import sys
import time

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
ST_RELATIME = 4096
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1


def mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(
        source.encode(), target.encode(), fstype.encode() if fstype else None, flags, data.encode()
    ):
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source or fstype} on {target}: {os.strerror(errno)}")


def read_only_bind(source: str, target: str, recursive: bool = False) -> None:
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    # Keep the flags the kernel locked on the original mount (noexec, atime...), add ours.
    kept = os.statvfs(target).f_flag & (MS_NOEXEC | MS_NOATIME | MS_NODIRATIME)
    relatime = MS_RELATIME if os.statvfs(target).f_flag & ST_RELATIME else 0
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | kept | relatime
    mount("", target, None, flags)


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH22x", b"lo", 0))
        flags = struct.unpack("16sH22x", ifreq)[1] | IFF_UP
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags))


def etc(disk: str, entries: list[str], ca_bundle: str) -> None:
    folder = f"{disk}/etc"
    os.mkdir(folder)
    for name in entries:
        source, target = f"/etc/{name}", f"{folder}/{name}"
        if os.path.isdir(source):
            os.mkdir(target)
        else:
            open(target, "w").close()  # an empty mount point
        read_only_bind(source, target)
    if ca_bundle:
        read_only_bind(ca_bundle, f"{folder}/ssl/certs/ca-certificates.crt")
    read_only_bind(folder, folder, recursive=True)


def bridge(socket_path: str, port: int) -> int:
    """socat from 127.0.0.1:port to the proxy's socket; returns its pid once it listens."""
    null = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    pid = os.posix_spawnp(
        "socat",
        [
            "socat",
            f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
            f"UNIX-CONNECT:{socket_path}",
        ],
        os.environ,
        file_actions=null,
    )
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return pid
        except OSError:
            if time.monotonic() > deadline:
                raise OSError(f"the egress bridge did not start on port {port}") from None
            time.sleep(0.002)


def overlay(lower: str, folder: str) -> None:
    """`folder`/merged: `lower` with writes going to `folder`/upper on the tmpfs."""
    for name in ("upper", "work", "merged"):
        os.makedirs(f"{folder}/{name}", exist_ok=True)
    layers = f"lowerdir={lower},upperdir={folder}/upper,workdir={folder}/work"
    mount("overlay", f"{folder}/merged", "overlay", 0, layers)


def main(argv: list[str]) -> int:
    options, disk, lower, socket_path, port, ca_bundle, layers, *entries = argv
    loopback_up()
    mount("shipmate", disk, "tmpfs", 0, options)
    for name in ("tmp", "home", "upper", "work", "merged"):
        os.mkdir(f"{disk}/{name}")
    if lower:
        overlay(lower, disk)
    for index, layer in enumerate(json.loads(layers)):
        overlay(layer, f"{disk}/layers/{index}")
    etc(disk, entries, ca_bundle)
    socat = bridge(socket_path, int(port)) if socket_path else None
    print("ready", flush=True)
    # Hold the namespaces in a shell rather than this Python: a few hundred KiB, not 10 MiB.
    wait = 'read -r _ || true; [ -z "$1" ] || kill -9 "$1"'
    os.execv("/bin/sh", ["/bin/sh", "-c", wait, "holder", str(socat or "")])  # noqa: S606


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except OSError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
