"""The mount and namespace calls of the sandbox's namespace holder (bot/sandbox/holder.py),
imported by it from this folder: standard library only, and few imports, as there."""

from __future__ import annotations

import ctypes
import os
import struct

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x20000, 0x10000000, 0x40000000
# open_tree, move_mount, mount_setattr: the same numbers on every architecture.
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
OPEN_TREE_CLONE, AT_EMPTY_PATH, MOVE_EMPTY_PATH = 1, 0x1000, 4
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_IDMAP = 1, 2, 4, 0x100000
PR_SET_DUMPABLE = 4
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
ST_RELATIME = 4096

LIBC = ctypes.CDLL(None, use_errno=True)


def check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    encoded = (source.encode(), target.encode(), fstype.encode() if fstype else None)
    check(LIBC.mount(*encoded, flags, data.encode()), f"mount {source or fstype} on {target}")


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


def mount_point(path: str, like: str) -> None:
    """An empty directory, or an empty file when `like` is a file, at `path`."""
    if os.path.isdir(like):
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            open(path, "w").close()


def unshare(flags: int) -> None:
    check(LIBC.unshare(flags), "unshare")


def idmapped(source: str, target: str, userns_fd: int) -> None:
    """`source` at `target` (read-only, nosuid, nodev) as an idmapped mount through `userns_fd`
    (uid 0 there is the sandbox uid): root's files there show as the sandbox uid's."""
    tree = check(LIBC.syscall(SYS_OPEN_TREE, -100, source.encode(), OPEN_TREE_CLONE), "open_tree")
    try:
        attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_IDMAP
        attr = struct.pack("QQQQ", attrs, 0, 0, userns_fd)
        done = LIBC.syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH, attr, len(attr))
        check(done, f"idmapping {source}")
        done = LIBC.syscall(SYS_MOVE_MOUNT, tree, b"", -100, target.encode(), MOVE_EMPTY_PATH)
        check(done, f"mount {source} on {target}")
    finally:
        os.close(tree)


def drop(uid: int, gid: int) -> None:
    """Become `uid`/`gid` for good (no groups, no capabilities left)."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    # A uid change makes us undumpable, and /proc/self/uid_map root's: ours again.
    check(LIBC.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "prctl")


def enter(uid: int, gid: int) -> None:
    """New user, mount and network namespaces, root in them and `uid`/`gid` outside."""
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET
    if LIBC.unshare(flags) < 0:
        errno = ctypes.get_errno()
        raise OSError(
            errno,
            f"uid {uid} may not make user namespaces here ({os.strerror(errno)}): allow them "
            "for unprivileged users (sysctl kernel.unprivileged_userns_clone, "
            "kernel.apparmor_restrict_unprivileged_userns, a container's seccomp profile)",
        )
    for name, text in (("uid_map", f"0 {uid} 1"), ("setgroups", "deny"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as file:
            file.write(text)
    mount("none", "/", None, MS_REC | MS_PRIVATE)
