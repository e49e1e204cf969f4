"""The sandbox's root tree, built once per sandbox by the namespace holder (bot/sandbox/holder.py),
which imports it as it imports bot/sandbox/mounts.py: standard library only.

Everything a sandbox's commands share lives on a size-capped tmpfs (the task's disk): the whole
root tree (the host's system folders read-only, a copy of the allowlisted /etc entries with the
CA bundle, a minimal /dev, /tmp, home and /workspace — the checkout's copy-on-write overlay — and
any extra binds; every writable mount nosuid and nodev), so that each command's bwrap needs only
one recursive bind and a /proc.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import bot.sandbox.image_root as image_root
    import bot.sandbox.mounts as mounts
else:
    import image_root
    import mounts

SAFE = mounts.MS_NOSUID | mounts.MS_NODEV  # every writable mount
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


def image_points(disk: str, binds: list[list[str]], workdir: str) -> list[tuple[str, str]]:
    """(source, path inside) of every mount an image's root gets: the task's own folders, the
    binds and layers, the checkout again at the image's WorkingDir."""
    points = [(f"{disk}/{data}", inside) for data, inside in PRIVATE]
    points += [(entry[0], entry[1]) for entry in binds]
    return points + ([(disk, workdir)] if workdir else [])


def make_disk(disk: str, tmpfs: str) -> str:
    """The task's disk mounted at `disk`, with its private folders and an empty root folder."""
    mounts.mount("shipmate", disk, "tmpfs", SAFE, tmpfs)
    for data, _ in PRIVATE:
        os.mkdir(f"{disk}/{data}")
    os.mkdir(f"{disk}/root")
    return f"{disk}/root"


def skeleton(
    root: str, system: list[list[str]], etc: list[str], ca_bundle: str, users: list[str]
) -> None:
    """The skeleton, on the tmpfs; the root is made read-only once everything is mounted."""
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


def mount_system(root: str, system: list[list[str]]) -> None:
    """The root bound on itself, the host's system folders read-only, the devices, a devpts."""
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


def mount_task(root: str, disk: str, workspace: str, workdir: str) -> None:
    """The task's own folders, and the checkout at /workspace (and at the image's WorkingDir)."""
    for data, inside in PRIVATE:
        mounts.bind(f"{disk}/{data}", f"{root}/{inside}", read_only=False)
    mounts.bind(workspace, f"{root}/workspace", read_only=False)
    if workdir:
        mounts.bind(workspace, f"{root}{workdir}", read_only=False)  # the image's WorkingDir


def mount_binds(root: str, extra: list[tuple[str, str, bool]]) -> None:
    """Every (source, path inside, read-only) bind, parents before children: a bind inside
    another one lands on top of it."""
    for source, inside, read_only in sorted(extra, key=lambda entry: entry[1].count("/")):
        mounts.mount_point(f"{root}{inside}", source)
        mounts.bind(source, f"{root}{inside}", read_only=read_only)


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
    root = make_disk(disk, tmpfs)
    if image:
        points = image_points(disk, binds + layers, workdir)
        image_root.lay_out(root, image, disk, points, (*DEVICES, *DEV_LINKS))
    if lower:
        workspace = overlay(lower, disk)
    merged = [
        (overlay(source, f"{disk}/layers/{index}"), inside)
        for index, (source, inside) in enumerate(layers)
    ]
    skeleton(root, system, etc, ca_bundle, users)
    mount_system(root, system)
    mount_task(root, disk, workspace, workdir)
    extra = [(source, inside, mode == "ro") for source, inside, mode in binds]
    extra += [(source, inside, False) for source, inside in merged]
    mount_binds(root, extra)
    if not image:  # an image's root stays writable: its writes land on the task's disk
        mounts.mount(
            "",
            root,
            None,
            mounts.MS_REMOUNT | mounts.MS_BIND | mounts.MS_RDONLY | SAFE,
        )
