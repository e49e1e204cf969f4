"""Attacks on the boundary, against the real sandbox: each test reproduces one and asserts it
is held."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder every local user can reach (pytest's own is root's alone), removed after."""
    folder = Path(tempfile.mkdtemp(prefix="shipmate-attack-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
