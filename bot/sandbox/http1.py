"""HTTP/1.1 framing as the egress proxy needs it: request heads and bodies from the sandbox, and
upstream responses read by their framing (Content-Length, chunked, or until close) so the masker
sees the body itself, never a secret split by chunk-size lines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
PIECE = 65536
TIMEOUT = 60.0

REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    504: "Gateway Timeout",
}


class ProxyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Head:
    """A request head (`method target version`) or a response head (`version status reason`,
    in the same three fields)."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]


def parse_headers(lines: list[str]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for line in lines:
        if not line:
            continue
        if any(c in line for c in "\r\n\0"):
            # A bare LF is a line break to some upstreams: it would smuggle a header (a second
            # Host) past every check here.
            raise ProxyError(400, "a header line holds a bare CR, LF or NUL")
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProxyError(400, "malformed header line")
        headers.append((name, value.strip()))
    return headers


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise ProxyError(400, "the request ended before its headers did") from None
    except asyncio.LimitOverrunError:
        raise ProxyError(431, "request headers are too large") from None
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/") or any(c in lines[0] for c in "\n\0"):
        raise ProxyError(400, f"malformed request line {lines[0][:100]!r}")
    return Head(parts[0].upper(), parts[1], parts[2], parse_headers(lines[1:]))


async def read_body(reader: asyncio.StreamReader, head: Head) -> bytes:
    if (head.header("transfer-encoding") or "").lower() == "chunked":
        body = bytearray()
        async for piece in _chunked(reader, 400):
            if len(body) + len(piece) > MAX_BODY:
                raise ProxyError(413, "request body is larger than the proxy buffers")
            body += piece
        return bytes(body)
    length = head.header("content-length")
    if length is None:
        return b""
    if not length.isdigit():
        raise ProxyError(400, "bad Content-Length")
    if int(length) > MAX_BODY:
        raise ProxyError(413, "request body is larger than the proxy buffers")
    return await reader.readexactly(int(length))


def refusal_response(status: int, message: str) -> bytes:
    body = (message.rstrip() + "\n").encode()
    return (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\nX-Shipmate-Egress: refused\r\n\r\n"
    ).encode() + body


async def read_response_head(reader: asyncio.StreamReader) -> tuple[bytes, Head]:
    """The upstream's final response head (interim 1xx ones skipped): raw bytes and parsed."""
    while True:
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        except asyncio.IncompleteReadError:
            raise ProxyError(502, "the upstream closed before its response headers ended") from None
        except asyncio.LimitOverrunError:
            raise ProxyError(502, "the upstream's response headers are too large") from None
        lines = raw.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        status, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not status.isdigit():
            raise ProxyError(502, "the upstream's status line is malformed")
        try:
            head = Head(version, status, reason, parse_headers(lines[1:]))
        except ProxyError:
            raise ProxyError(502, "the upstream sent a malformed header line") from None
        if not 100 <= int(status) < 200 or status == "101":
            return raw, head


def transfer_codings(head: Head) -> list[str]:
    return [
        coding.strip().lower()
        for value in head.values("transfer-encoding")
        for coding in value.split(",")
        if coding.strip()
    ]


def has_body(method: str, head: Head) -> bool:
    status = int(head.target)
    return method != "HEAD" and status >= 200 and status not in (204, 304)


async def response_body(
    reader: asyncio.StreamReader, method: str, head: Head
) -> AsyncIterator[bytes]:
    """The response body as sent before transfer coding: chunked decoded, Content-Length read
    exactly, otherwise until the upstream closes."""
    if not has_body(method, head):
        return
    codings = transfer_codings(head)
    if codings and codings[-1] == "chunked":
        async for piece in _chunked(reader, 502):
            yield piece
        return
    lengths = {v.strip() for v in head.values("content-length")}
    if not codings and lengths:
        if len(lengths) != 1 or not next(iter(lengths)).isdigit():
            raise ProxyError(502, "the upstream sent a bad Content-Length")
        left = int(lengths.pop())
        while left:
            piece = await asyncio.wait_for(reader.read(min(left, PIECE)), TIMEOUT)
            if not piece:
                raise ProxyError(502, "the upstream closed before its body ended")
            left -= len(piece)
            yield piece
        return
    while piece := await asyncio.wait_for(reader.read(PIECE), TIMEOUT):
        yield piece


async def _chunked(reader: asyncio.StreamReader, status: int) -> AsyncIterator[bytes]:
    """Decode a chunked body; trailers are read and dropped. `status` is the error to raise on
    bad framing (400 for the sandbox's request, 502 for an upstream's response)."""
    while True:
        try:
            size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), TIMEOUT)
            size = int(size_line.split(b";")[0].strip(), 16)
        except (ValueError, asyncio.LimitOverrunError):
            raise ProxyError(status, "malformed chunked body") from None
        if size < 0:
            raise ProxyError(status, "malformed chunked body")
        if size == 0:
            while (await asyncio.wait_for(reader.readuntil(b"\r\n"), TIMEOUT)) != b"\r\n":
                pass
            return
        while size:
            piece = await asyncio.wait_for(reader.readexactly(min(size, PIECE)), TIMEOUT)
            size -= len(piece)
            yield piece
        if await reader.readexactly(2) != b"\r\n":
            raise ProxyError(status, "malformed chunked body")
