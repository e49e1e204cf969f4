"""The proxy's upstream side: connecting to the address it checked, the request headers it
sends, the Host it pins, and relaying the answer through the masker (bot/sandbox/masking.py)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass

from bot.sandbox.allowlist import split_host_port
from bot.sandbox.destinations import Address
from bot.sandbox.http1 import (
    TIMEOUT,
    Head,
    ProxyError,
    has_body,
    read_response_head,
    response_body,
    transfer_codings,
)
from bot.sandbox.masking import StreamMasker

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    # The proxy has the whole body already; an interim 100 would only confuse the relay.
    "expect",
    "content-length",
    "host",
}


@dataclass(frozen=True)
class Upstream:
    """An admitted destination: the allowlisted name and the addresses checked for it."""

    host: str
    port: int
    addresses: list[Address]

    @property
    def authority(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port in (80, 443) else f"{name}:{self.port}"

    async def open(
        self, tls: ssl.SSLContext | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the first checked address that answers (never the name again: a second
        lookup could answer differently); TLS verifies and sends SNI for the allowlisted name."""
        error: OSError | TimeoutError = OSError(f"no address for {self.host}")
        for address in self.addresses:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(
                        str(address),
                        self.port,
                        ssl=tls,
                        server_hostname=self.host if tls is not None else None,
                    ),
                    TIMEOUT,
                )
            except (OSError, TimeoutError) as exc:
                error = exc
        raise error


def pin_host(head: Head, host: str, port: int, default_port: int) -> str | None:
    """Why the request's Host header disagrees with the host it was admitted for (domain
    fronting: the upstream would route by the header), or None."""
    values = head.values("host")
    if not values:
        return None
    if len(values) > 1:
        return "the request has more than one Host header"
    try:
        named, named_port = split_host_port(values[0].strip().lower(), default_port)
    except ValueError:
        return "the request's Host header is malformed"
    if named.rstrip(".") != host.lower().rstrip(".") or named_port != port:
        # The header's text is not repeated: it is the sandbox's to choose, secrets included.
        return (
            f"the request's Host header names another host than {host}:{port}, the one it was "
            "allowed for; the request was blocked"
        )
    return None


def outgoing_headers(head: Head, upstream: Upstream, *, identity: bool) -> list[tuple[str, str]]:
    """The sandbox's headers as sent upstream: hop-by-hop ones dropped, Host set to the admitted
    name, and with secrets at stake identity encoding asked for (the masker reads the body as
    sent; a compressed one would hide a real value)."""
    headers = [("Host", upstream.authority)]
    headers += [(k, v) for k, v in head.headers if k.lower() not in HOP_BY_HOP]
    if identity:
        headers = [(k, v) for k, v in headers if k.lower() != "accept-encoding"]
        headers.append(("Accept-Encoding", "identity"))
    return headers


async def relay_response(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    request: Head,
    masker: StreamMasker | None,
) -> int:
    """Copy the upstream's answer to the sandbox; bytes received. Without a masker, as sent.
    With one, the body is read by its framing (chunked decoded) and masked as one stream, then
    sent chunked (HTTP/1.0: until close). ProxyError before anything was written."""
    raw, response = await read_response_head(reader)
    if masker is None:
        return await _as_sent(raw, reader, writer)
    encoding = (response.header("content-encoding") or "").strip().lower()
    if encoding not in ("", "identity") or any(
        coding != "chunked" for coding in transfer_codings(response)
    ):
        raise ProxyError(
            502,
            f"the upstream answered with Content-Encoding: {encoding or 'none'} and "
            f"Transfer-Encoding: {', '.join(transfer_codings(response)) or 'none'} although "
            "asked for identity; a compressed body cannot be checked for secrets, so it was "
            "blocked",
        )
    body = has_body(request.method, response)
    framed = body and request.version != "HTTP/1.0"
    dropped = {"connection", "keep-alive", "trailer", "transfer-encoding"}
    if body:
        dropped.add("content-length")
    # Re-framed as chunked, the answer is HTTP/1.1 whatever the upstream spoke.
    version = "HTTP/1.1" if framed else response.method
    lines = [f"{version} {response.target} {response.version}".rstrip()]
    lines += [f"{k}: {v}" for k, v in response.headers if k.lower() not in dropped]
    lines += ["Transfer-Encoding: chunked"] if framed else []
    lines += ["Connection: close", "", ""]
    writer.write(masker.mask("\r\n".join(lines).encode("latin-1")))
    received = len(raw)
    try:
        async for piece in response_body(reader, request.method, response):
            received += len(piece)
            _write(writer, masker.feed(piece), framed)
            await writer.drain()
    except ProxyError as exc:
        # Headers are out already: end the connection short instead of writing an error page.
        raise ConnectionResetError(exc.message) from None
    _write(writer, masker.flush(), framed)
    if framed:
        writer.write(b"0\r\n\r\n")
    await writer.drain()
    return received


async def _as_sent(raw: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    writer.write(raw)
    received = len(raw)
    while piece := await asyncio.wait_for(reader.read(65536), TIMEOUT):
        received += len(piece)
        writer.write(piece)
        await writer.drain()
    return received


def _write(writer: asyncio.StreamWriter, data: bytes, framed: bool) -> None:
    if data:
        writer.write(b"%x\r\n%s\r\n" % (len(data), data) if framed else data)


async def tunnel(
    upstream: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[int, int]:
    """A CONNECT passed through unread (no secret and nothing guarded at stake): bytes each way."""
    try:
        up_reader, up_writer = await upstream.open(None)
    except (OSError, TimeoutError) as exc:
        raise ProxyError(502, f"cannot reach {upstream.host}:{upstream.port}: {exc}") from None
    writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
    await writer.drain()
    counts = [0, 0]

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, index: int) -> None:
        with contextlib.suppress(Exception):
            while chunk := await src.read(65536):
                counts[index] += len(chunk)
                dst.write(chunk)
                await dst.drain()
        with contextlib.suppress(Exception):
            dst.close()

    await asyncio.gather(pipe(reader, up_writer, 0), pipe(up_reader, writer, 1))
    return counts[0], counts[1]
