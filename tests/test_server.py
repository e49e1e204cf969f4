"""`shipmate serve` as a user runs it: a real process, a real port, SIGTERM to stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from bot.store import Store
from bot.webhooks import sign
from tests.conftest import WEBHOOK_FIXTURES
from tests.servers import free_port


def _serve(tmp_path: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, "SHIPMATE_DATA_DIR": str(tmp_path / "data"), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("shipmate serve did not become healthy")


def _deliver(base: str, event: str, fixture: str) -> tuple[str, httpx.Response]:
    """POST a recorded delivery signed with the secret "s": its new delivery id and the answer."""
    body = (WEBHOOK_FIXTURES / event / fixture).read_bytes()
    delivery = str(uuid.uuid4())
    response = httpx.post(
        f"{base}/api/github/webhooks",
        content=body,
        headers={
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign(body, "s"),
            "Content-Type": "application/json",
        },
    )
    return delivery, response


def test_serve_stores_routes_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    process = _serve(tmp_path, port, SHIPMATE_WEBHOOK_SECRET="s")
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, process)
        page = httpx.get(base + "/").text
        assert "Register GitHub App" in page  # no App credentials yet: the setup page
        delivery, response = _deliver(base, "installation", "created.payload.json")
        assert response.status_code == 202 and response.json()["status"] == "queued"
        store = Store(f"sqlite:///{tmp_path / 'data' / 'shipmate.db'}")
        deadline = time.monotonic() + 20
        while (stored := store.get_delivery(delivery)) is None or stored.status != "handled":
            assert time.monotonic() < deadline, "the in-process worker did not handle it"
            time.sleep(0.05)
        store.dispose()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def test_bad_key_stops_start_up_with_one_line(tmp_path: Path) -> None:
    process = _serve(
        tmp_path, free_port(), SHIPMATE_APP_ID="1", SHIPMATE_PRIVATE_KEY="-----BEGIN nonsense"
    )
    output = process.communicate(timeout=30)[0].decode().strip().splitlines()
    assert process.returncode == 2
    assert output == [output[0]] and output[0].startswith(
        "shipmate: configuration error: SHIPMATE_PRIVATE_KEY: not a valid PEM"
    )


def _bad_key_file(data: Path) -> None:
    (data / "app-credentials.json").write_text('{"app_id": 7, "private_key": "not a key"}')


def _corrupt_file(data: Path) -> None:
    (data / "app-credentials.json").write_text('{"app_id": 7, "private_key": ')


START_UP_ERRORS = {
    "database unreachable": (
        {"SHIPMATE_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:1/x"},
        None,
        "SHIPMATE_DATABASE_URL: cannot use the database at postgresql+psycopg://u@127.0.0.1:1/x",
    ),
    "unsupported dialect": (
        {"SHIPMATE_DATABASE_URL": "mysql://u@h/x"},
        None,
        "SHIPMATE_DATABASE_URL: no driver for 'mysql'",
    ),
    "data dir cannot be created": (
        {"SHIPMATE_DATA_DIR": "/proc/x"},
        None,
        "SHIPMATE_DATA_DIR: cannot create /proc/x",
    ),
    "corrupt saved credentials": (
        {},
        _corrupt_file,
        "app-credentials.json: not valid JSON",
    ),
    "bad key in saved credentials": (
        {},
        _bad_key_file,
        "app-credentials.json (private_key): not a valid PEM private key",
    ),
    "app id without key": (
        {"SHIPMATE_APP_ID": "7"},
        None,
        "SHIPMATE_PRIVATE_KEY: not set (nor SHIPMATE_PRIVATE_KEY_PATH) although SHIPMATE_APP_ID",
    ),
}


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize("case", sorted(START_UP_ERRORS))
def test_start_up_errors_are_one_line_and_exit_2(tmp_path: Path, command: str, case: str) -> None:
    env, prepare, expected = START_UP_ERRORS[case]
    data = tmp_path / "data"
    data.mkdir()
    if prepare is not None:
        prepare(data)
    argv = [sys.executable, "-m", "bot.cli", command]
    if command == "serve":
        argv += ["--port", str(free_port())]
    result = subprocess.run(
        argv,
        cwd=tmp_path,
        env={**os.environ, "SHIPMATE_DATA_DIR": str(data), "SHIPMATE_WEBHOOK_SECRET": "s", **env},
        capture_output=True,
        timeout=60,
    )
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2, result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
    assert len(lines) == 1, lines
    assert lines[0].startswith("shipmate: configuration error: ")
    assert expected in lines[0]


def test_json_logs_carry_the_delivery_on_every_job_line(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "stderr.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env={
                **os.environ,
                "SHIPMATE_DATA_DIR": str(tmp_path / "data"),
                "SHIPMATE_WEBHOOK_SECRET": "s",
                "SHIPMATE_LOG_FORMAT": "json",
            },
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            _wait_healthy(base, process)
            delivery, response = _deliver(
                base, "issue_comment", "created.with-installation.payload.json"
            )
            assert response.json()["status"] == "queued"
            deadline = time.monotonic() + 20
            while f'"delivery_id": "{delivery}"' not in log_path.read_text() or (
                "job.done" not in log_path.read_text()
            ):
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.05)
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert any(line.get("logger", "").startswith("uvicorn") for line in lines)
    assert all("msg" in line and "level" in line and "timestamp" in line for line in lines)
    mine = [line for line in lines if line.get("delivery_id") == delivery]
    assert {"delivery.handled", "job.done"} <= {line["msg"] for line in mine}
    for line in mine:
        assert line["event"] == "issue_comment"
        assert line["repo"] == "Codertocat/Hello-World"
        assert line["installation_id"] == 1
