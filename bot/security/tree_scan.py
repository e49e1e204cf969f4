"""Secrets in a checkout: `scan_files` (pure) over `(path, text)` pairs, and `text_files`, its
I/O edge, reading a checkout's text files.

Skipped: `.git`, symlinks, files over `MAX_FILE_BYTES`, and binaries (a NUL byte near the start).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.security.files import read_repo_file
from bot.security.redact import secret_values
from bot.security.scan import scan

MAX_FILE_BYTES = 1024 * 1024
MAX_FILES = 20_000
_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class FileFinding:
    """A secret in a file of a checkout (`line` is 1-based). The value itself is not kept."""

    path: str
    line: int
    rule: str


@dataclass(frozen=True)
class TreeScan:
    """A checkout scan: where secrets are (safe to log) and their values (to redact, never log)."""

    findings: tuple[FileFinding, ...] = ()
    values: frozenset[str] = frozenset()


def scan_files(files: Iterable[tuple[str, str]]) -> TreeScan:
    """Scan `(path, text)` pairs; return the findings and the secret values they hold."""
    findings: list[FileFinding] = []
    values: set[str] = set()
    for path, text in files:
        found = scan(text)
        findings.extend(FileFinding(path, f.line, f.rule) for f in found)
        values |= secret_values(text, found)
    return TreeScan(tuple(findings), frozenset(values))


def text_files(tree: Path) -> Iterator[tuple[str, str]]:
    """`(relative path, text)` for every scannable file under `tree`, in a stable order."""
    count = 0
    for root, dirs, names in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(names):
            path = Path(root) / name
            if count >= MAX_FILES:
                return
            text = _read_text(tree, str(path.relative_to(tree)))
            if text is not None:
                count += 1
                yield str(path.relative_to(tree)), text


def _read_text(tree: Path, relative: str) -> str | None:
    try:
        found = read_repo_file(tree, relative, MAX_FILE_BYTES)
    except OSError:
        return None
    if found is None or found.truncated:
        return None
    data = found.data
    if b"\0" in data[:_SNIFF_BYTES]:
        return None
    return data.decode("utf-8", errors="replace")


def scan_tree(tree: Path) -> TreeScan:
    """Every secret in the checkout at `tree`."""
    return scan_files(text_files(tree))
