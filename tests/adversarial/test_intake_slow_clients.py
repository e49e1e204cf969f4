"""Slow loris against a real `shipmate serve`: connections that trickle their headers or their
body are closed at the read deadlines (short here), and deliveries still get through."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adversarial.intake_harness import Served, start
from tests.conftest import WEBHOOK_FIXTURES

SLOW = 100  # connections (bounded: the machine is shared)
BODY = (WEBHOOK_FIXTURES / "issue_comment" / "created.payload.json").read_bytes()


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[Served]:
    yield from start(
        tmp_path,
        SHIPMATE_HTTP_HEADER_TIMEOUT_SECONDS="1.5",
        SHIPMATE_HTTP_BODY_TIMEOUT_SECONDS="2.5",
    )


def _closed(sock: socket.socket) -> bool:
    """Whether the server closed it (EOF or reset, after any answer it sent), without waiting."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return False
    except OSError:
        pass
    return True


def _open(port: int, first: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(first)
    return sock


def _trickle_until_closed(socks: list[socket.socket], byte: bytes, limit: float) -> float:
    """Send one byte on each open socket every 0.3 s until the server has closed them all."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if all(_closed(sock) for sock in socks):
            return time.monotonic() - started
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.sendall(byte)
        time.sleep(0.3)
    raise AssertionError(f"slow connections were still open after {limit} s")


def test_trickled_headers_are_cut_at_the_header_deadline(strict: Served) -> None:
    socks = [
        _open(strict.port, b"POST /api/github/webhooks HTTP/1.1\r\nHost: x\r\nX-A: ")
        for _ in range(SLOW)
    ]
    try:
        # A real delivery meanwhile is answered as usual.
        assert strict.post("issue_comment", BODY).status_code == 202
        took = _trickle_until_closed(socks, b"a", limit=10)
        assert took < 5
    finally:
        for sock in socks:
            sock.close()


def test_a_silent_connection_and_a_trickled_body_are_cut(strict: Served) -> None:
    silent = socket.create_connection(("127.0.0.1", strict.port), timeout=5)
    body = _open(
        strict.port,
        b"POST /api/github/webhooks HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: ping\r\n"
        b"X-GitHub-Delivery: slow\r\nContent-Length: 100000\r\n\r\n{",
    )
    try:
        took = _trickle_until_closed([silent, body], b" ", limit=12)
        assert took < 7
    finally:
        silent.close()
        body.close()
    assert strict.post("issue_comment", BODY).status_code == 202
