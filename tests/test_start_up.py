"""What a new operator hits in the first minutes, found at start-up with one line each: no model
key for a process that would run tasks (`serve`, `worker`, `run`), a worker without a GitHub
App, a port already in use. Real processes, as a user starts them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.servers import free_port


@pytest.fixture(scope="module")
def private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SHIPMATE_", "ANTHROPIC_"))},
        "SHIPMATE_DATA_DIR": str(tmp_path / "data"),
        "SHIPMATE_WEBHOOK_SECRET": "s",
        **extra,
    }


def _shipmate(env: dict[str, str], *args: str) -> tuple[int, list[str]]:
    """Exit code and stderr lines of a `shipmate` command that is expected to refuse."""
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stderr.strip().splitlines()


def _git_repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def test_no_model_key_stops_serve_worker_and_run_with_one_line(
    tmp_path: Path, private_key: str
) -> None:
    env = _env(tmp_path, SHIPMATE_APP_ID="7", SHIPMATE_PRIVATE_KEY=private_key)
    repo = _git_repo(tmp_path / "repo")
    for args in (
        ("serve", "--port", str(free_port())),
        ("worker",),
        ("run", "--repo", str(repo), "--brief", "Fix add"),
    ):
        code, lines = _shipmate(env, *args)
        assert code == 2, (args, lines)
        assert lines == [
            "shipmate: configuration error: ANTHROPIC_API_KEY: not set, so no run could call "
            "the model; set it (or ANTHROPIC_AUTH_TOKEN), or choose another provider with "
            "SHIPMATE_MODEL_PROVIDER"
        ], args


def test_a_web_only_serve_needs_no_model_key(tmp_path: Path, private_key: str) -> None:
    """`serve --no-worker` runs no task; the setup page (no App yet) runs none either."""
    port = free_port()
    env = _env(tmp_path, SHIPMATE_APP_ID="7", SHIPMATE_PRIVATE_KEY=private_key)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--no-worker", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "serve --no-worker did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def test_a_worker_without_an_app_says_so(tmp_path: Path) -> None:
    code, lines = _shipmate(_env(tmp_path, ANTHROPIC_API_KEY="k"), "worker")
    assert code == 2
    *before, line = lines  # after the database's own log line (SQLite is migrated first)
    assert not any("Traceback" in text or "error" in text for text in before)
    assert line.startswith("shipmate: configuration error: SHIPMATE_APP_ID: not set")
    assert "a worker without a GitHub App can act on no event" in line


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, lines = _shipmate(_env(tmp_path), "serve", "--port", str(port))
    assert code == 2
    assert lines == [
        f"shipmate: port {port} on 127.0.0.1 is already in use (another `shipmate serve`?): "
        "stop what listens there, or choose another port with --port"
    ]
