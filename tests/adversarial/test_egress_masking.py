"""Attack 10 of issue 13: response masking was defeated when the secret's host echoed the value
chunked (split across chunks), base64-encoded or reversed. Held: the proxy decodes chunked
transfer before masking, masks across chunk boundaries and every encoded form (base64 at each
alignment, URL, hex, JSON, reversed). Also: the Host header is pinned to the admitted host, and
`--secret NAME@HOST:PORT` honours the port. Against a real sandbox and a real proxy."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import sys
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
import structlog

from bot.sandbox import open_sandbox
from bot.sandbox.base import SandboxSpec
from bot.sandbox.ca import CertificateAuthority
from bot.sandbox.proxy import EgressEvent, EgressProxy
from tests.adversarial.egress import LOOPBACK, Keeper, needs_sandbox, serving

pytestmark = [pytest.mark.anyio, needs_sandbox]
REAL = "real/Tok+en=7f3a9c_Q2xW"


def _forms(value: str) -> list[tuple[str, str]]:
    """(label, text) of every way the echoing host sends the value back."""
    raw = value.encode()
    return [
        ("raw", value),
        *[(f"b64-{len(p)}", base64.b64encode(p + raw + b"!").decode()) for p in (b"", b"a", b"ab")],
        ("b64url", base64.urlsafe_b64encode(b"x" + raw).decode()),
        ("hex", raw.hex()),
        ("url", quote(value, safe="")),
        ("json", json.dumps({"token": value})),
        ("reversed", value[::-1]),
    ]


class Echoer(Keeper):
    """Echoes the X-Key it received in every form, chunked into 5-byte chunks (so each value is
    split across chunks), and in a response header."""

    def answer(self, request: bytes) -> bytes:
        key = next(
            line.split(b":", 1)[1].strip().decode()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"x-key:")
        )
        body = "".join(f"{label} {text}\n" for label, text in _forms(key)).encode()
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 5]), body[i : i + 5])
            for i in range(0, len(body), 5)
        )
        return (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Echo: %s\r\n"
            b"Connection: close\r\n\r\n%s0\r\n\r\n" % (key.encode(), chunks)
        )


def _recovered(output: str) -> list[str]:
    """Labels of the lines from which the real value can be decoded back (independently of the
    proxy's own list of forms)."""
    found = []
    for line in output.splitlines():
        label, _, text = line.partition(" ")
        decoders = {
            "raw": lambda t: t,
            "hex": lambda t: bytes.fromhex(t).decode("latin-1"),
            "url": unquote,
            "json": lambda t: str(json.loads(t).get("token")),
            "reversed": lambda t: t[::-1],
            "b64url": lambda t: base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)).decode("latin-1"),
        }
        decode = decoders.get(label) or (
            lambda t: base64.b64decode(t + "=" * (-len(t) % 4)).decode("latin-1")
        )
        try:
            if REAL in decode(text) or REAL in text:
                found.append(label)
        except ValueError:
            if REAL in text:
                found.append(label)
    return found


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_an_echoing_host_never_gets_the_real_value_back_into_the_sandbox(
    tmp_path: Path, scheme: str
) -> None:
    upstream_ca = CertificateAuthority.load_or_create(tmp_path / "upstream-ca")
    echoer = Echoer()
    tls = upstream_ca.leaf_context("127.0.0.2") if scheme == "https" else None
    server = await asyncio.start_server(echoer.handle, "127.0.0.2", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    (tmp_path / "ws").mkdir()
    spec = SandboxSpec(
        workspace=tmp_path / "ws",
        secrets={"API_TOKEN": (REAL, [f"127.0.0.2:{port}"])},
        allow_networks=LOOPBACK,
        task_id="attack-10",
    )
    events: list[EgressEvent] = []
    try:
        with structlog.testing.capture_logs() as logs:
            async with open_sandbox(
                spec,
                audit=events.append,
                ca_dir=tmp_path / "ca",
                upstream_ssl=ssl.create_default_context(cadata=upstream_ca.cert_pem.decode()),
            ) as sandbox:
                result = await sandbox.exec(
                    [
                        "bash",
                        "-c",
                        f'curl -sS -i -H "X-Key: $API_TOKEN" {scheme}://127.0.0.2:{port}/e',
                    ]
                )
    finally:
        server.close()
    assert result.exit_code == 0, result.stderr.decode()
    (request,) = echoer.seen
    assert f"X-Key: {REAL}".encode() in request  # the declared host got the real value
    shown = result.stdout.decode("latin-1")
    assert REAL not in shown
    # After the CONNECT's own answer (https), the upstream's.
    head, _, body = shown[shown.index("HTTP/1.1 200 OK") :].partition("\r\n\r\n")
    assert _recovered(body) == []
    assert "X-Echo: SHIPMATE_PLACEHOLDER_API_TOKEN_" in head
    assert body.startswith("raw SHIPMATE_PLACEHOLDER_API_TOKEN_")  # masked, then shown
    assert len(body.splitlines()) == len(_forms(REAL))  # the re-framed body arrived whole
    assert REAL not in repr(logs) and REAL not in repr(events)


async def test_the_host_header_is_pinned_to_the_host_the_request_was_allowed_for(
    tmp_path: Path,
) -> None:
    """Domain fronting: a request to the secret's host with `Host: elsewhere` would let the
    upstream (a CDN) route the real value to another site."""
    keeper = Keeper()
    async with serving(keeper) as port:
        (tmp_path / "ws").mkdir()
        spec = SandboxSpec(
            workspace=tmp_path / "ws",
            secrets={"API_TOKEN": (REAL, f"127.0.0.2:{port}")},
            allow_networks=LOOPBACK,
            task_id="fronting",
        )
        async with open_sandbox(spec, ca_dir=tmp_path / "ca") as sandbox:
            fronted = await sandbox.exec(
                [
                    "bash",
                    "-c",
                    f'curl -sS -i -H "Host: evil.example" -H "X-Key: $API_TOKEN" '
                    f"http://127.0.0.2:{port}/",
                ]
            )
            straight = await sandbox.exec(
                ["bash", "-c", f'curl -sS -H "X-Key: $API_TOKEN" http://127.0.0.2:{port}/']
            )
    assert b"403 Forbidden" in fronted.stdout and b"Host header names" in fronted.stdout
    assert straight.stdout == b"ok"
    (request,) = keeper.seen
    assert f"Host: 127.0.0.2:{port}".encode() in request and REAL.encode() in request


async def test_sandbox_exec_secret_honours_the_port(tmp_path: Path) -> None:
    """`--secret NAME@HOST:PORT` never matched (the request's host was compared without its
    port); now it does, and the same host on another port is not the secret's host."""
    right, wrong = Keeper(), Keeper()
    async with serving(right) as port, serving(wrong) as other:
        env = {**os.environ, "TOKEN": REAL, "SHIPMATE_DATA_DIR": str(tmp_path / "data")}
        command = (
            f'curl -sS -H "X-Key: $TOKEN" http://127.0.0.2:{port}/; echo; '
            f'curl -sS -H "X-Key: $TOKEN" http://127.0.0.2:{other}/'
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "sandbox",
            "exec",
            "--allow-network",
            "127.0.0.0/8",
            "--allow-host",
            f"127.0.0.2:{other}",
            "--secret",
            f"TOKEN@127.0.0.2:{port}",
            "--",
            "bash",
            "-c",
            command,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert out.startswith(b"ok\n") and b"not one of that secret's hosts" in out
    (request,) = right.seen
    assert f"X-Key: {REAL}".encode() in request
    assert wrong.seen == [] and REAL.encode() not in out + err


async def test_a_bare_line_feed_cannot_smuggle_a_second_host_header(tmp_path: Path) -> None:
    keeper = Keeper()
    async with serving(keeper) as port:
        proxy = EgressProxy(
            socket_path=tmp_path / "p.sock",
            allow_hosts=[f"127.0.0.2:{port}"],
            secrets={"API_TOKEN": (REAL, f"127.0.0.2:{port}")},
            ca=None,
            audit=None,
            task_id="smuggle",
            allow_networks=LOOPBACK,
        )
        await proxy.start()
        try:
            reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
            writer.write(
                f"GET http://127.0.0.2:{port}/ HTTP/1.1\r\nX-A: 1\nHost: evil.example\r\n\r\n".encode()
            )
            await writer.drain()
            answer = await reader.read()
            writer.close()
        finally:
            await proxy.stop()
    assert answer.startswith(b"HTTP/1.1 400") and keeper.seen == []


def _dechunk(body: bytes) -> bytes:
    decoded = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return decoded
        decoded, body = decoded + body[:size], body[size + 2 :]


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.0 200 OK\r\n\r\n<{}>",  # until close, from an HTTP/1.0 upstream
        b"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n<{}>",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"{h:x}\r\n<{a}\r\n{m:x};ext=1\r\n{b}>\r\n0\r\nX-Trailer: {}\r\n\r\n",
    ],
)
async def test_every_framing_is_decoded_masked_and_re_framed(tmp_path: Path, answer: bytes) -> None:
    value = REAL.encode()
    half = len(value) // 2
    payload = (
        answer.replace(b"{n}", str(len(value) + 2).encode())
        .replace(b"{h:x}", b"%x" % (half + 1))
        .replace(b"{m:x}", b"%x" % (len(value) - half + 1))
        .replace(b"{a}", value[:half])
        .replace(b"{b}", value[half:])
        .replace(b"{}", value)
    )

    class Answer(Keeper):
        def answer(self, request: bytes) -> bytes:
            return payload

    async with serving(Answer()) as port:
        proxy = EgressProxy(
            socket_path=tmp_path / "p.sock",
            allow_hosts=[],
            secrets={"API_TOKEN": (REAL, f"127.0.0.2:{port}")},
            ca=None,
            audit=None,
            task_id="framing",
            allow_networks=LOOPBACK,
        )
        await proxy.start()
        try:
            reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
            writer.write(f"GET http://127.0.0.2:{port}/ HTTP/1.1\r\n\r\n".encode())
            await writer.drain()
            response = await reader.read()
            writer.close()
        finally:
            await proxy.stop()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Transfer-Encoding: chunked" in head
    assert value not in response
    placeholder = proxy.placeholders["API_TOKEN"].encode()
    assert _dechunk(body) == b"<" + placeholder + b">"
