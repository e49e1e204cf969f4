"""The sandbox's root tree from an image's rootfs, for the namespace holder (bot/sandbox/
holder.py), which imports it as it imports bot/sandbox/mounts.py: standard library only.

The holder sees the host's tree while it builds the root, so nothing an image put there may be
followed: every folder it mounts on or writes into is made a real folder first (an image's
symlink at /tmp, /home or /etc/ssl removed from the task's overlay, never the image).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import bot.sandbox.mounts as mounts
else:
    import mounts


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


def lay_out(
    root: str, image: str, disk: str, points: list[tuple[str, str]], devices: tuple[str, ...]
) -> None:
    """The root tree from an image's rootfs: a copy-on-write overlay over it, its writes on the
    task's disk; the mount points of the skeleton and of `points` (source, path inside) made
    safe to use, and the skeleton's own /dev entries (`devices`) cleared."""
    upper = f"{disk}/image"
    for name in ("upper", "work"):
        os.makedirs(f"{upper}/{name}")
    # userxattr: the holder is root of its own user namespace only (overlayfs keeps its
    # whiteouts and copy-up marks in user.* xattrs, which tmpfs holds, then).
    layers = f"lowerdir={image},upperdir={upper}/upper,workdir={upper}/work,userxattr"
    mounts.mount("overlay", root, "overlay", mounts.MS_NOSUID | mounts.MS_NODEV, layers)
    for inside in ("etc/ssl/certs", "proc", "workspace", "dev/pts"):
        real_dirs(root, inside)
    for source, inside in points:
        if os.path.isdir(source):
            real_dirs(root, inside)
            continue
        real_dirs(root, os.path.dirname(inside))
        target = f"{root}/{inside.strip('/')}"
        if os.path.islink(target):
            os.unlink(target)
        elif os.path.isdir(target):
            os.rmdir(target)
    for name in devices:
        path = f"{root}/dev/{name}"
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            os.unlink(path)
        elif os.path.isdir(path):
            os.rmdir(path)  # a folder an image put there; an empty one is all it may be
