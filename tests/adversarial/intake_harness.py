"""A real `shipmate serve` on loopback for the intake attacks, and signed posts to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.intake.webhooks import sign
from tests.servers import free_port

SECRET = "intake-secret"
HOOK = "/api/github/webhooks"


@dataclass
class Served:
    base: str
    port: int
    data: Path

    def post(
        self, event: str, body: bytes, delivery: str | None = None, secret: str = SECRET
    ) -> httpx.Response:
        return httpx.post(
            self.base + HOOK,
            content=body,
            headers={
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
                "X-Hub-Signature-256": sign(body, secret),
                "Content-Type": "application/json",
            },
            timeout=10,
        )


def start(tmp_path: Path, **env: str) -> Iterator[Served]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", str(port), "--workers", "1"],
        cwd=tmp_path,
        env={
            **os.environ,
            "SHIPMATE_DATA_DIR": str(tmp_path / "data"),
            "SHIPMATE_WEBHOOK_SECRET": SECRET,
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "shipmate serve did not become healthy"
            time.sleep(0.05)
        yield Served(base, port, tmp_path / "data")
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from start(tmp_path)
