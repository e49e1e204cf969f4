"""Shared pieces of the egress attacks: a proxy on a unix socket, raw CONNECTs to it, and
upstreams on loopback that keep or echo what they are sent."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from bot.sandbox.placeholders import Hosts
from bot.sandbox.proxy import EgressProxy

needs_sandbox = pytest.mark.skipif(
    shutil.which("bwrap") is None or shutil.which("curl") is None,
    reason="needs bwrap and curl",
)
LOOPBACK = ("127.0.0.0/8",)


@contextlib.asynccontextmanager
async def proxy_on(
    tmp_path: Path,
    allow: Sequence[str],
    *,
    networks: Sequence[str] = (),
    secrets: dict[str, tuple[str, Hosts]] | None = None,
    guarded: Sequence[str] = (),
) -> AsyncIterator[EgressProxy]:
    proxy = EgressProxy(
        socket_path=tmp_path / "egress.sock",
        allow_hosts=allow,
        secrets=secrets or {},
        ca=None,
        audit=None,
        task_id="adversarial",
        allow_networks=networks,
        guarded=guarded,
    )
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def connect_through(proxy: EgressProxy, authority: str, payload: bytes) -> bytes:
    """CONNECT `authority` through the proxy, then send `payload`: everything that came back."""
    reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
    writer.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    await writer.drain()
    answer = await reader.readuntil(b"\r\n\r\n")
    if answer.startswith(b"HTTP/1.1 200"):
        writer.write(payload)
        await writer.drain()
        with contextlib.suppress(asyncio.TimeoutError):
            answer += await asyncio.wait_for(reader.read(4096), 5)
    else:
        answer += await reader.read()
    writer.close()
    return answer


class Keeper:
    """An upstream that keeps each request (head and body) and answers with `answer(head)`."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def answer(self, request: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        request = head + await reader.readexactly(length)
        self.seen.append(request)
        writer.write(self.answer(request))
        await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def serving(keeper: Keeper, host: str = "127.0.0.2", port: int = 0) -> AsyncIterator[int]:
    server = await asyncio.start_server(keeper.handle, host, port)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
