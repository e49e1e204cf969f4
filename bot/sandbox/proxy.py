"""The egress proxy: the only way out of a sandbox. Listens on a unix socket, and on the listening
socket each sandbox's namespace holder opens on the sandbox's loopback (127.0.0.1:3128, the
network namespace being otherwise empty) and hands over; serves plain HTTP proxy requests and
HTTPS via CONNECT, to allowlisted hosts only. When the task has placeholder secrets, HTTPS is
intercepted with a leaf certificate from the per-install CA so the placeholder can be replaced
by the real value, only in requests to that secret's host. Every request is audited.

One request per connection (`Connection: close` both ways) keeps the relay simple and correct.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from bot.sandbox import placeholders
from bot.sandbox.allowlist import Allowlist, split_host_port
from bot.sandbox.ca import CertificateAuthority

log = structlog.get_logger("shipmate.egress")

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
TIMEOUT = 60.0
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


@dataclass(frozen=True)
class EgressEvent:
    at: datetime
    task_id: str
    host: str
    port: int
    method: str
    bytes_out: int
    bytes_in: int
    allowed: bool
    reason: str


class ProxyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Head:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


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
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ProxyError(400, f"malformed request line {lines[0][:100]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProxyError(400, "malformed header line")
        headers.append((name, value.strip()))
    return Head(parts[0].upper(), parts[1], parts[2], headers)


async def read_body(reader: asyncio.StreamReader, head: Head) -> bytes:
    if (head.header("transfer-encoding") or "").lower() == "chunked":
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # trailers are not supported; the blank line
                return bytes(body)
            if len(body) + size > MAX_BODY:
                raise ProxyError(413, "request body is larger than the proxy buffers")
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    length = head.header("content-length")
    if length is None:
        return b""
    if not length.isdigit():
        raise ProxyError(400, "bad Content-Length")
    if int(length) > MAX_BODY:
        raise ProxyError(413, "request body is larger than the proxy buffers")
    return await reader.readexactly(int(length))


def _response(status: int, reason: str, message: str) -> bytes:
    body = (message.rstrip() + "\n").encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nX-Shipmate-Egress: refused\r\n\r\n"
    ).encode() + body


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    504: "Gateway Timeout",
}


async def _response_head(reader: asyncio.StreamReader) -> bytes:
    """The upstream's status line and headers (all of what it sent if it closed early)."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial
    except asyncio.LimitOverrunError:
        raise ProxyError(502, "the upstream's response headers are too large") from None


def _content_encoding(response_head: bytes) -> str:
    for line in response_head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-encoding":
            return value.strip().lower()
    return ""


@functools.cache
def _system_trust() -> ssl.SSLContext:
    """The host's trust store for upstream TLS, loaded once a process (it takes ~25 ms, which
    every new sandbox paid); a context is safe to share between connections."""
    return ssl.create_default_context()


class EgressProxy:
    def __init__(
        self,
        *,
        socket_path: Path,
        allow_hosts: Sequence[str],
        secrets: Mapping[str, tuple[str, str]],
        ca: CertificateAuthority | None,
        audit: Callable[[EgressEvent], None] | None,
        task_id: str,
        upstream_ssl: ssl.SSLContext | None = None,
        guarded: Sequence[str] = (),
    ) -> None:
        self.socket_path = socket_path
        # Secret values found in the checkout: no request may carry one out, to any host.
        self.guarded = placeholders.guarded_forms(guarded)
        self.allowlist = Allowlist(list(allow_hosts))
        self.table = placeholders.build(secrets)
        # A secret's host is reachable even if the allowlist forgot it.
        for secret in self.table.values():
            self.allowlist.entries.extend(Allowlist([secret.host]).entries)
        self.ca = ca
        self.audit = audit
        self.task_id = task_id
        self.upstream_ssl = upstream_ssl or _system_trust()
        self.events: list[EgressEvent] = []
        self.ca_bundle_path: Path | None = None
        self._server: asyncio.Server | None = None
        self._listeners: list[asyncio.Server] = []
        self._bundle_dir: Path | None = None

    @property
    def placeholders(self) -> dict[str, str]:
        return {name: s.placeholder for name, s in self.table.items()}

    @property
    def intercept(self) -> bool:
        return bool(self.table or self.guarded) and self.ca is not None

    def sandbox_env(self, port: int, ca_path_inside: str) -> dict[str, str]:
        proxy = f"http://127.0.0.1:{port}"
        env = {
            "HTTP_PROXY": proxy,
            "HTTPS_PROXY": proxy,
            "http_proxy": proxy,
            "https_proxy": proxy,
            "NO_PROXY": "localhost,127.0.0.1",
            "no_proxy": "localhost,127.0.0.1",
        }
        if self.ca is not None:
            for name in (
                "SSL_CERT_FILE",
                "REQUESTS_CA_BUNDLE",
                "CURL_CA_BUNDLE",
                "NODE_EXTRA_CA_CERTS",
                "GIT_SSL_CAINFO",
                "PIP_CERT",
            ):
                env[name] = ca_path_inside
        env.update(self.placeholders)
        return env

    async def start(self) -> None:
        if self.ca is not None:
            self._bundle_dir = Path(tempfile.mkdtemp(prefix="shipmate-ca-"))
            self.ca_bundle_path = self.ca.bundle(self._bundle_dir / "ca-bundle.crt")
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.socket_path), limit=MAX_HEAD
        )
        self.socket_path.chmod(0o666)

    async def serve_socket(self, sock: socket.socket) -> None:
        """Also serve on `sock`, a listening socket made elsewhere: the one a sandbox's namespace
        holder opened on its loopback, so commands inside reach the proxy at 127.0.0.1 without a
        relay process."""
        self._listeners.append(await asyncio.start_server(self._serve, sock=sock, limit=MAX_HEAD))

    async def stop(self) -> None:
        servers = [*self._listeners, *([self._server] if self._server is not None else [])]
        for server in servers:
            server.close()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        self._server = None
        self._listeners = []
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        if self._bundle_dir is not None:
            import shutil

            shutil.rmtree(self._bundle_dir, ignore_errors=True)

    def _record(
        self, host: str, port: int, method: str, out: int, into: int, allowed: bool, reason: str
    ) -> None:
        event = EgressEvent(
            datetime.now(UTC), self.task_id, host, port, method, out, into, allowed, reason
        )
        self.events.append(event)
        log.info("egress", host=host, port=port, method=method, allowed=allowed, reason=reason)
        if self.audit is not None:
            with contextlib.suppress(Exception):
                self.audit(event)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(read_head(reader), TIMEOUT)
            if head is None:
                return
            if head.method == "CONNECT":
                await self._connect(head, reader, writer)
            else:
                await self._plain(head, reader, writer)
        except ProxyError as exc:
            with contextlib.suppress(Exception):
                writer.write(
                    _response(
                        exc.status,
                        _REASONS.get(exc.status, "Error"),
                        f"shipmate egress: {exc.message}",
                    )
                )
                await writer.drain()
        except (
            TimeoutError,
            ConnectionError,
            asyncio.IncompleteReadError,
            ssl.SSLError,
            ValueError,
        ) as exc:
            log.info("egress.connection_error", error=f"{type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _refuse(
        self, host: str, port: int, method: str, reason: str, status: int = 403
    ) -> ProxyError:
        self._record(host, port, method, 0, 0, False, reason)
        return ProxyError(status, reason)

    def _check(self, host: str, port: int, method: str) -> None:
        if not self.allowlist.allows(host, port):
            raise self._refuse(
                host,
                port,
                method,
                f"{host}:{port} is not on this task's allowlist; a maintainer can add it to "
                "network.allow in .github/shipmate.yml",
            )

    async def _plain(
        self, head: Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        url = urlsplit(head.target)
        if url.scheme != "http" or not url.hostname:
            raise ProxyError(400, "send absolute http:// URLs to the proxy, or CONNECT for https")
        host, port = url.hostname, url.port or 80
        self._check(host, port, head.method)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        body = await read_body(reader, head)
        await self._forward(head, path, body, host, port, None, writer)

    async def _connect(
        self, head: Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, port = split_host_port(head.target, 443)
        self._check(host, port, "CONNECT")
        if not self.intercept:
            await self._tunnel(host, port, writer, reader)
            return
        assert self.ca is not None
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        await writer.start_tls(self.ca.leaf_context(host))
        inner = await asyncio.wait_for(read_head(reader), TIMEOUT)
        if inner is None:
            return
        body = await read_body(reader, inner)
        target = inner.target
        if target.startswith("https://"):
            parsed = urlsplit(target)
            target = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        await self._forward(inner, target, body, host, port, self.upstream_ssl, writer)

    async def _tunnel(
        self, host: str, port: int, writer: asyncio.StreamWriter, reader: asyncio.StreamReader
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            self._record(host, port, "CONNECT", 0, 0, True, f"upstream unreachable: {exc}")
            raise ProxyError(502, f"cannot reach {host}:{port}: {exc}") from None
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
        self._record(host, port, "CONNECT", counts[0], counts[1], True, "tunnel")

    async def _forward(
        self,
        head: Head,
        path: str,
        body: bytes,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        writer: asyncio.StreamWriter,
    ) -> None:
        headers = [
            (k, v)
            for k, v in head.headers
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
        ]
        if self.table:
            # The masker reads the response as sent: a compressed body would hide a real value.
            headers = [(k, v) for k, v in headers if k.lower() != "accept-encoding"]
            headers.append(("Accept-Encoding", "identity"))
        outgoing_head = "".join(f"{k}: {v}\r\n" for k, v in headers)
        outgoing = (path + outgoing_head).encode("latin-1", "replace") + body
        if self.guarded:
            if head.header("content-encoding") not in (None, "", "identity"):
                raise self._refuse(
                    host,
                    port,
                    head.method,
                    "a compressed request body cannot be checked for the repository's secrets, "
                    "so it was blocked",
                )
            if placeholders.carries(outgoing, self.guarded):
                raise self._refuse(
                    host,
                    port,
                    head.method,
                    "the request carries a secret value found in the repository's files; "
                    "secrets in the checkout never leave the sandbox, so it was blocked",
                )
        wrong = placeholders.misdirected(outgoing, host, self.table)
        if wrong:
            raise self._refuse(
                host,
                port,
                head.method,
                f"a placeholder for secret {', '.join(sorted(wrong))} was sent to {host}, which is "
                "not that secret's host; the request was blocked",
            )
        body = placeholders.substitute(body, host, self.table)
        request_head = placeholders.substitute(
            (
                f"{head.method} {path} HTTP/1.1\r\n{outgoing_head}"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode("latin-1", "replace"),
            host,
            self.table,
        )
        if not any(k.lower() == "host" for k, _ in headers):
            request_head = request_head.replace(b"\r\n", f"\r\nHost: {host}\r\n".encode(), 1)
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=tls, server_hostname=host if tls else None),
                TIMEOUT,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            self._record(host, port, head.method, 0, 0, True, f"upstream unreachable: {exc}")
            raise ProxyError(502, f"cannot reach {host}:{port}: {exc}") from None
        sent = len(request_head) + len(body)
        received = 0
        masker = placeholders.StreamMasker(self.table)
        try:
            up_writer.write(request_head + body)
            await up_writer.drain()
            response_head = await asyncio.wait_for(_response_head(up_reader), TIMEOUT)
            received += len(response_head)
            encoding = _content_encoding(response_head)
            if self.table and encoding not in ("", "identity"):
                raise self._refuse(
                    host,
                    port,
                    head.method,
                    f"{host} answered with Content-Encoding: {encoding} although asked for "
                    "identity; a compressed body cannot be checked for secrets, so it was blocked",
                    status=502,
                )
            writer.write(masker.feed(response_head))
            while chunk := await asyncio.wait_for(up_reader.read(65536), TIMEOUT):
                received += len(chunk)
                writer.write(masker.feed(chunk))
                await writer.drain()
            writer.write(masker.flush())
            await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                up_writer.close()
        self._record(host, port, head.method, sent, received, True, "forwarded")
