"""The run's transcript: JSON lines of every request's new messages, every response, every tool
call and result, with timings. Text passes through redaction before it is written."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bot.security.redact import redact


class Transcript:
    def __init__(self, path: Path | None, known_secrets: tuple[str, ...] = ()) -> None:
        self.path = path
        self.known = known_secrets
        self.started = time.monotonic()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")

    def write(self, kind: str, **data: Any) -> None:
        if self.path is None:
            return
        record = {"t": round(time.monotonic() - self.started, 3), "kind": kind, **data}
        line = redact(json.dumps(record, default=str), self.known)
        with self.path.open("a") as handle:
            handle.write(line + "\n")
