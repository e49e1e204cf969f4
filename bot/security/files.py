"""Reading a repository's files on the host, the one way it is done.

A checkout is repository content: any of its paths may be a symlink (to the App's key, to
/proc/self/environ), a FIFO that blocks a reader forever, or a file of gigabytes. So a host-side
read opens each component beneath the tree with O_NOFOLLOW (openat from the directory before
it), accepts a regular file only, and reads at most `limit` bytes. Nothing is resolved by path
once opened, so a symlink anywhere on the way is refused, not followed.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LIMIT = 1024 * 1024
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused right after, by fstat).
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_REFUSED = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EACCES, errno.ENXIO, errno.EISDIR)


@dataclass(frozen=True)
class RepoFile:
    """The first `limit` bytes of a regular file; `truncated` when it is longer."""

    data: bytes
    truncated: bool

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class UnsafePath(ValueError):
    """A path that cannot name a file beneath the tree (empty, absolute, `..`, NUL)."""


def components(relative: str) -> list[str]:
    """The parts of a path relative to the tree; `UnsafePath` for anything that could leave it."""
    if not relative or relative.startswith("/") or "\0" in relative:
        raise UnsafePath(f"not a path inside the repository: {relative!r}")
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise UnsafePath(f"not a path inside the repository: {relative!r}")
    return parts


def read_repo_file(tree: Path, relative: str, limit: int = DEFAULT_LIMIT) -> RepoFile | None:
    """`relative` beneath `tree` if it is a regular file reached without any symlink, else None
    (absent, a symlink at any component, a folder, a FIFO, a device, unreadable)."""
    parts = components(relative)
    try:
        directory = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIRECTORY, dir_fd=directory)
            os.close(directory)
            directory = inner
        handle = os.open(parts[-1], _FILE, dir_fd=directory)
    except OSError as exc:
        if exc.errno in _REFUSED:
            return None
        raise
    finally:
        os.close(directory)
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            return None
        data = _read_up_to(handle, limit + 1)
    finally:
        os.close(handle)
    return RepoFile(data[:limit], len(data) > limit)


def _read_up_to(handle: int, count: int) -> bytes:
    chunks: list[bytes] = []
    left = count
    while left > 0:
        chunk = os.read(handle, min(left, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
