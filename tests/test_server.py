"""`shipmate serve` as a user runs it: a real process, a real port, SIGTERM to stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.db.store import Store
from bot.intake.webhooks import sign
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
    "no web process": (
        {"SHIPMATE_WEB_PROCESSES": "0"},
        None,
        "SHIPMATE_WEB_PROCESSES: Input should be greater than or equal to 1",
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
                "SHIPMATE_WEB_PROCESSES": "1",
            },
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            _wait_healthy(base, process)
            assert _children(process.pid) == set()  # one process, no supervisor
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


def _children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited orphan waits here for an init that may never reap)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_serve_with_several_processes_stores_each_delivery_once_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    """`serve --workers 3`: every delivery, sent twice at once on separate connections, is
    stored once and handled once, by the one process that runs the worker; SIGTERM stops them
    all and frees the port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", str(port), "--workers", "3"],
        cwd=tmp_path,
        env={
            **os.environ,
            "SHIPMATE_DATA_DIR": str(tmp_path / "data"),
            "SHIPMATE_WEBHOOK_SECRET": "s",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    recorded = json.loads((WEBHOOK_FIXTURES / "installation" / "created.payload.json").read_text())
    ids = [str(uuid.uuid4()) for _ in range(30)]

    def post(delivery: str) -> tuple[str, int, str]:
        # Each delivery its own body: one body under two delivery ids is a replay (duplicate).
        body = json.dumps(
            {**recorded, "installation": {**recorded["installation"], "node_id": delivery}}
        ).encode()
        response = httpx.post(  # a new connection each time, taken by any of the processes
            f"{base}/api/github/webhooks",
            content=body,
            headers={
                "X-GitHub-Event": "installation",
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": sign(body, "s"),
                "Content-Type": "application/json",
            },
        )
        return delivery, response.status_code, response.json()["status"]

    try:
        _wait_healthy(base, process)
        servers = _children(process.pid)
        assert len(servers) >= 3
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(post, ids + ids))
        for delivery in ids:
            mine = sorted((code, status) for d, code, status in replies if d == delivery)
            assert mine == [(200, "duplicate"), (202, "queued")]
        store = Store(f"sqlite:///{tmp_path / 'data' / 'shipmate.db'}")
        deadline = time.monotonic() + 30
        while store.count_deliveries("handled") < len(ids):
            assert time.monotonic() < deadline, "the in-process worker did not handle them all"
            time.sleep(0.05)
        with store.engine.connect() as conn:
            jobs = conn.exec_driver_sql("SELECT state, attempts, worker_id FROM jobs").all()
        store.dispose()
        assert len(jobs) == len(ids)
        assert {(state, attempts) for state, attempts, _ in jobs} == {("done", 1)}
        assert len({worker for _, _, worker in jobs}) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
    assert output.count('"serve.leading"') == 1, output  # the worker ran in one process only
    deadline = time.monotonic() + 10  # multiprocessing's resource tracker leaves just after
    while any(_running(pid) for pid in servers):
        assert time.monotonic() < deadline, "a child of serve outlived it"
        time.sleep(0.05)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.anyio
async def test_the_worker_and_checkpoints_pass_to_another_process_when_their_holder_stops(
    tmp_path: Path,
) -> None:
    from bot.intake.leadership import lead as _lead

    lock = tmp_path / "serve.lock"
    running: list[str] = []

    def duty(name: str) -> Any:
        async def run(stop: asyncio.Event) -> None:
            running.append(name)
            await stop.wait()
            running.remove(name)

        return run

    first_stop, second_stop = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(_lead(lock, first_stop, [duty("first")], asyncio.Event()))
    await asyncio.sleep(0.1)
    second = asyncio.create_task(_lead(lock, second_stop, [duty("second")], asyncio.Event()))
    await asyncio.sleep(0.3)
    assert running == ["first"]
    first_stop.set()
    await first
    async with asyncio.timeout(5):
        while running != ["second"]:
            await asyncio.sleep(0.05)
    second_stop.set()
    await second
    assert running == []


@pytest.mark.anyio
async def test_a_process_that_is_stopping_too_never_takes_the_lead(tmp_path: Path) -> None:
    """A SIGTERM reaches every process of `serve`: one still draining its connections when the
    leader has let go must not start the worker on its way out."""
    from bot.intake.leadership import lead as _lead

    lock = tmp_path / "serve.lock"
    led: list[str] = []

    async def duty(stop: asyncio.Event) -> None:
        led.append("led")
        await stop.wait()

    first_stop, second_stop, second_resign = asyncio.Event(), asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(_lead(lock, first_stop, [duty], asyncio.Event()))
    await asyncio.sleep(0.1)
    second = asyncio.create_task(_lead(lock, second_stop, [duty], second_resign))
    await asyncio.sleep(0.2)
    second_resign.set()  # its SIGTERM, before the leader lets go
    first_stop.set()
    await first
    async with asyncio.timeout(5):
        await second  # it gives up trying instead of leading
    assert led == ["led"]


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


class _Cycle:
    response_started = False


@pytest.mark.anyio
async def test_a_response_goes_out_in_one_send() -> None:
    from bot.intake.server import HeadersWithBody

    transport, cycle = _Transport(), _Cycle()
    wrapped = HeadersWithBody(transport, cycle)  # type: ignore[arg-type]
    wrapped.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the response: as it comes
    cycle.response_started = True
    wrapped.write(b"HTTP/1.1 202 Accepted\r\n\r\n")
    wrapped.write(b"{}")
    wrapped.write(b"more")
    assert transport.writes == [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 202 Accepted\r\n\r\n{}",
        b"more",
    ]
    await asyncio.sleep(0)
    assert len(transport.writes) == 3

    # Headers whose body does not come in the same loop iteration go out alone, then.
    transport, cycle = _Transport(), _Cycle()
    wrapped = HeadersWithBody(transport, cycle)  # type: ignore[arg-type]
    cycle.response_started = True
    wrapped.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n"]
    wrapped.write(b"late")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n", b"late"]

    # Closed with headers held (an app that failed after starting): they go first.
    transport, cycle = _Transport(), _Cycle()
    wrapped = HeadersWithBody(transport, cycle)  # type: ignore[arg-type]
    cycle.response_started = True
    wrapped.write(b"HTTP/1.1 200 OK\r\n\r\n")
    wrapped.close()
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n"] and transport.closed


def test_serve_uses_the_one_send_protocol_on_this_uvicorn() -> None:
    """`HttpProtocol` hooks uvicorn's `_start_asgi_task`; should uvicorn rename it, this says
    so instead of every response quietly taking two sends again."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from bot.intake.server import HttpProtocol

    assert callable(getattr(HttpToolsProtocol, "_start_asgi_task", None))
    assert "_start_asgi_task" in HttpProtocol.__dict__


def test_keep_alive_pipelining_head_and_expect_100_continue_through_serve(tmp_path: Path) -> None:
    """Raw HTTP/1.1 on one connection against `shipmate serve`: several requests in a row,
    pipelined, HEAD, and a body sent only after `100 Continue`."""
    port = free_port()
    process = _serve(tmp_path, port, SHIPMATE_WEBHOOK_SECRET="s")
    base = f"http://127.0.0.1:{port}"
    body = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'

    def post(delivery: str, expect: bool = False) -> bytes:
        head = (
            f"POST /api/github/webhooks HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: ping\r\n"
            f"X-GitHub-Delivery: {delivery}\r\nX-Hub-Signature-256: {sign(body, 's')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        )
        return (head + ("Expect: 100-continue\r\n" if expect else "") + "\r\n").encode()

    def read_reply(sock: socket.socket, buffer: bytearray, *, head: bool = False) -> bytes:
        def more() -> bytes:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection"
            return chunk

        while b"\r\n\r\n" not in buffer:
            buffer += more()
        top, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        lines = [line.lower() for line in top.split(b"\r\n")]
        sizes = [int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")]
        length = 0 if head or not sizes else sizes[0]
        while len(rest) < length:
            rest += more()
        buffer[:] = rest[length:]
        return top + b"\r\n\r\n" + rest[:length]

    try:
        _wait_healthy(base, process)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            buffer = bytearray()
            sock.sendall(post("k1") + body)
            assert b'"status":"pong"' in read_reply(sock, buffer)
            sock.sendall(post("k2") + body + post("k3") + body)  # pipelined
            second, third = read_reply(sock, buffer), read_reply(sock, buffer)
            assert b'"delivery":"k2"' in second and b'"delivery":"k3"' in third
            sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_reply(sock, buffer, head=True).startswith(b"HTTP/1.1 200")
            sock.sendall(post("k4", expect=True))
            assert read_reply(sock, buffer).startswith(b"HTTP/1.1 100")
            sock.sendall(body)
            assert b'"delivery":"k4"' in read_reply(sock, buffer)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def test_serve_runs_one_process_per_cpu_by_default_and_at_most_four(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.intake.server import default_processes

    for cpus, expected in ((1, 1), (3, 3), (64, 4)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cpus: set(range(n)))
        assert default_processes() == expected
