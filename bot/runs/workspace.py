"""What a task changed in its /workspace, read by the host from the overlay, never by the
sandbox's own git.

The overlay's upper layer holds exactly what the task wrote (files, whiteouts for deletions,
the folders on their way); the merged view is what the task sees. Both are read through the
sandbox holder's mount namespace, once the task's last command has ended (nothing of it runs
then), with every component opened O_NOFOLLOW: a symlink is read as a symlink (its target),
never followed, and FIFOs and devices are skipped as git skips them. Entries named `.git` are
skipped at any depth, as git does.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bot.security.files import read_repo_file

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Touched:
    """Paths the task may have changed: `present` ones exist in the merged view (file or
    symlink), `gone` ones (a file or a whole folder) do not."""

    present: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    """A file as git records it: its mode and content (a symlink's content is its target)."""

    mode: str
    content: bytes


def join_path(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _open_folder(root: Path, relative: str) -> int | None:
    """An fd of `relative` beneath `root`, reached without any symlink, or None."""
    try:
        handle = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    for part in [part for part in relative.split("/") if part]:
        try:
            inner = os.open(part, _DIRECTORY, dir_fd=handle)
        except OSError:
            os.close(handle)
            return None
        os.close(handle)
        handle = inner
    return handle


def listing(root: Path, relative: str) -> dict[str, int]:
    """name -> st_mode of a folder's entries (lstat), `.git` left out; {} when it is no folder."""
    handle = _open_folder(root, relative)
    if handle is None:
        return {}
    try:
        modes: dict[str, int] = {}
        for name in os.listdir(handle):
            if name.casefold() == ".git":
                continue
            try:
                modes[name] = os.stat(name, dir_fd=handle, follow_symlinks=False).st_mode
            except OSError:
                continue
        return modes
    finally:
        os.close(handle)


def touched(upper: Path, merged: Path, lower: Path) -> Touched:
    """Every path whose content may differ from the lower tree, from the upper layer."""
    found = Touched()
    _walk(upper, merged, lower, "", found)
    return found


def _walk(upper: Path, merged: Path, lower: Path, folder: str, found: Touched) -> None:
    written, seen, before = (listing(root, folder) for root in (upper, merged, lower))
    found.gone.extend(join_path(folder, name) for name in before if name not in seen)
    for name, mode in seen.items():
        path = join_path(folder, name)
        if name in written:
            if stat.S_ISDIR(mode) and stat.S_ISDIR(written[name]) and name in before:
                _walk(upper, merged, lower, path, found)
            elif stat.S_ISDIR(mode):
                found.gone.append(path)  # whatever the lower tree had there is replaced
                found.present.extend(_everything(merged, path))
            else:
                found.gone.append(path)
                found.present.append(path)
        elif name not in before or stat.S_IFMT(before[name]) != stat.S_IFMT(mode):
            # Shown from elsewhere than the same path below (a renamed folder): read it whole.
            found.gone.append(path)
            found.present.extend(_everything(merged, path) if stat.S_ISDIR(mode) else [path])


def _everything(root: Path, folder: str) -> Iterator[str]:
    for name, mode in sorted(listing(root, folder).items()):
        path = join_path(folder, name)
        if stat.S_ISDIR(mode):
            yield from _everything(root, path)
        elif stat.S_ISREG(mode) or stat.S_ISLNK(mode):
            yield path


def read_entry(merged: Path, path: str, limit: int) -> Entry | None:
    """`path` of the merged view as git would record it, or None (gone, a FIFO, a device)."""
    folder, _, name = path.rpartition("/")
    handle = _open_folder(merged, folder)
    if handle is None:
        return None
    try:
        mode = os.stat(name, dir_fd=handle, follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode):
            return Entry("120000", os.fsencode(os.readlink(name, dir_fd=handle)))
    except OSError:
        return None
    finally:
        os.close(handle)
    if not stat.S_ISREG(mode):
        return None
    found = read_repo_file(merged, path, limit)
    if found is None:
        return None
    if found.truncated:
        raise TooLarge(path)
    return Entry("100755" if mode & stat.S_IXUSR else "100644", found.data)


class TooLarge(Exception):
    """The change's new content passes the review's cap (the file named is where it did)."""
