"""Read a checkout's text files for the secret scanner (the I/O edge of `security.scan_files`).

Skipped: `.git`, symlinks, files over `MAX_FILE_BYTES`, and binaries (a NUL byte near the start).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from bot.security.scan import TreeScan, scan_files

MAX_FILE_BYTES = 1024 * 1024
MAX_FILES = 20_000
_SNIFF_BYTES = 8192


def text_files(tree: Path) -> Iterator[tuple[str, str]]:
    """`(relative path, text)` for every scannable file under `tree`, in a stable order."""
    count = 0
    for root, dirs, names in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(names):
            path = Path(root) / name
            if count >= MAX_FILES:
                return
            text = _read_text(path)
            if text is not None:
                count += 1
                yield str(path.relative_to(tree)), text


def _read_text(path: Path) -> str | None:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:_SNIFF_BYTES]:
        return None
    return data.decode("utf-8", errors="replace")


def scan_tree(tree: Path) -> TreeScan:
    """Every secret in the checkout at `tree`."""
    return scan_files(text_files(tree))
