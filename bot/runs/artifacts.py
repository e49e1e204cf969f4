"""What a run leaves beside its transcript for the dashboard: the reviewed diff and the test
output, redacted like everything Shipmate shows. A change held back (a secret, a protected
path) leaves no diff: only its reason is kept."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def save_artifacts(
    store: Any,
    run_id: str,
    transcript: Path,
    *,
    status: str,
    diff: str,
    test_output: str,
    clean: Callable[[str], str],
) -> None:
    transcript.parent.mkdir(parents=True, exist_ok=True)
    if diff and status != "blocked":
        _write_private(transcript.with_suffix(".diff"), clean(diff))
    if test_output:
        _write_private(transcript.with_suffix(".tests.txt"), clean(test_output))
    store.update_run(run_id, transcript_path=str(transcript))
