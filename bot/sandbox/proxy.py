"""The egress proxy: the only way out of a sandbox. Listens on a unix socket, and on the listening
socket each sandbox's namespace holder opens on the sandbox's loopback (127.0.0.1:3128, the
network namespace being otherwise empty) and hands over; serves plain HTTP proxy requests and
HTTPS via CONNECT, to allowlisted hosts only, and only at public addresses unless the operator
allowed a range (bot/sandbox/destinations.py). When the task has placeholder secrets, HTTPS is
intercepted with a leaf certificate from the per-install CA so the placeholder can be replaced
by the real value, only in requests to that secret's hosts, and every response is masked of the
real values before it reaches the sandbox. Every request is audited.

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

from bot.sandbox import destinations, placeholders
from bot.sandbox.allowlist import Allowlist, split_host_port
from bot.sandbox.base import ALLOW_BY_REPO_CONFIG
from bot.sandbox.ca import CertificateAuthority
from bot.sandbox.http1 import (
    MAX_HEAD,
    TIMEOUT,
    Head,
    ProxyError,
    read_body,
    read_head,
    refusal_response,
)
from bot.sandbox.relay import Upstream, outgoing_headers, pin_host, relay_response, tunnel

log = structlog.get_logger("shipmate.egress")


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
        secrets: Mapping[str, tuple[str, placeholders.Hosts]],
        ca: CertificateAuthority | None,
        audit: Callable[[EgressEvent], None] | None,
        task_id: str,
        upstream_ssl: ssl.SSLContext | None = None,
        guarded: Sequence[str] = (),
        allow_networks: Sequence[str] = (),
        allow_hint: str = ALLOW_BY_REPO_CONFIG,
    ) -> None:
        self.socket_path = socket_path
        self.allow_hint = allow_hint
        # Secret values found in the checkout: no request may carry one out, to any host.
        self.guarded = placeholders.guarded_forms(guarded)
        # Host names reach the proxy in whatever case the sandbox wrote them.
        self._guarded_lower = tuple({form.lower() for form in self.guarded})
        self.allowlist = Allowlist(list(allow_hosts))
        self.table = placeholders.build(secrets)
        # A secret's hosts are reachable even if the allowlist forgot them.
        for secret in self.table.values():
            self.allowlist.entries.extend(Allowlist(secret.host_entries).entries)
        # Ranges the operator opened beyond the public internet (never the repository).
        self.networks = destinations.parse_networks(allow_networks)
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
        # The sandbox chooses the host name (and the method): one spelling a value found in
        # the checkout must not carry it into the logs or the audit table.
        host, method, reason = (self._scrub(text) for text in (host, method, reason))
        event = EgressEvent(
            datetime.now(UTC), self.task_id, host, port, method, out, into, allowed, reason
        )
        self.events.append(event)
        log.info("egress", host=host, port=port, method=method, allowed=allowed, reason=reason)
        if self.audit is not None:
            with contextlib.suppress(Exception):
                self.audit(event)

    def _scrub(self, text: str) -> str:
        if placeholders.carries(text.encode("utf-8", "replace").lower(), self._guarded_lower):
            return "[a value found in the repository's files]"
        return text

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
                writer.write(refusal_response(exc.status, f"shipmate egress: {exc.message}"))
                await writer.drain()
        except (
            TimeoutError,
            ConnectionError,
            asyncio.IncompleteReadError,
            ssl.SSLError,
            ValueError,
        ) as exc:
            # The type only: a message could quote bytes of the request.
            log.info("egress.connection_error", error=type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _refuse(
        self, host: str, port: int, method: str, reason: str, status: int = 403
    ) -> ProxyError:
        self._record(host, port, method, 0, 0, False, reason)
        return ProxyError(status, reason)

    async def _admit(self, host: str, port: int, method: str) -> Upstream:
        """The allowlist, then where the name resolves: the addresses to connect to."""
        if not self.allowlist.allows(host, port):
            how = self.allow_hint.format(host=host, port=port)
            raise self._refuse(
                host, port, method, f"{host}:{port} is not on this task's allowlist; {how}"
            )
        try:
            addresses = await destinations.resolve(host, port, self.networks)
        except destinations.DestinationRefused as exc:
            raise self._refuse(host, port, method, str(exc)) from None
        return Upstream(host, port, addresses)

    def _pin(self, head: Head, upstream: Upstream, default_port: int) -> None:
        reason = pin_host(head, upstream.host, upstream.port, default_port)
        if reason is not None:
            raise self._refuse(upstream.host, upstream.port, head.method, reason)

    async def _plain(
        self, head: Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        url = urlsplit(head.target)
        if url.scheme != "http" or not url.hostname:
            raise ProxyError(400, "send absolute http:// URLs to the proxy, or CONNECT for https")
        upstream = await self._admit(url.hostname, url.port or 80, head.method)
        self._pin(head, upstream, 80)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        body = await read_body(reader, head)
        await self._forward(head, path, body, upstream, None, writer)

    async def _connect(
        self, head: Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, port = split_host_port(head.target, 443)
        upstream = await self._admit(host, port, "CONNECT")
        if not self.intercept:
            try:
                counts = await tunnel(upstream, reader, writer)
            except ProxyError:
                self._record(host, port, "CONNECT", 0, 0, True, "upstream unreachable")
                raise
            self._record(host, port, "CONNECT", counts[0], counts[1], True, "tunnel")
            return
        assert self.ca is not None
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        await writer.start_tls(self.ca.leaf_context(host))
        inner = await asyncio.wait_for(read_head(reader), TIMEOUT)
        if inner is None:
            return
        target = inner.target
        if not target.startswith("/"):
            parsed = urlsplit(target)
            if parsed.scheme != "https" or (parsed.hostname or "") != host.lower():
                raise self._refuse(host, port, inner.method, "the request names another host")
            target = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        self._pin(inner, upstream, 443)
        body = await read_body(reader, inner)
        await self._forward(inner, target, body, upstream, self.upstream_ssl, writer)

    async def _forward(
        self,
        head: Head,
        path: str,
        body: bytes,
        upstream: Upstream,
        tls: ssl.SSLContext | None,
        writer: asyncio.StreamWriter,
    ) -> None:
        host, port = upstream.host, upstream.port
        headers = outgoing_headers(head, upstream, identity=bool(self.table))
        outgoing_head = "".join(f"{k}: {v}\r\n" for k, v in headers)
        outgoing = (path + outgoing_head).encode("latin-1", "replace") + body
        self._screen(head, outgoing, upstream)
        body = placeholders.substitute(body, host, port, self.table)
        request_head = placeholders.substitute(
            (
                f"{head.method} {path} HTTP/1.1\r\n{outgoing_head}"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode("latin-1", "replace"),
            host,
            port,
            self.table,
        )
        try:
            up_reader, up_writer = await upstream.open(tls)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            reason = f"upstream unreachable: {type(exc).__name__}"
            self._record(host, port, head.method, 0, 0, True, reason)
            raise ProxyError(502, f"cannot reach {host}:{port}: {exc}") from None
        try:
            up_writer.write(request_head + body)
            await up_writer.drain()
            masker = placeholders.StreamMasker(self.table) if self.table else None
            try:
                received = await relay_response(up_reader, writer, head, masker)
            except ProxyError as exc:
                raise self._refuse(host, port, head.method, exc.message, exc.status) from None
        finally:
            with contextlib.suppress(Exception):
                up_writer.close()
        self._record(
            host, port, head.method, len(request_head) + len(body), received, True, "forwarded"
        )

    def _screen(self, head: Head, outgoing: bytes, upstream: Upstream) -> None:
        reason = placeholders.screen(
            outgoing,
            upstream.host,
            upstream.port,
            self.table,
            self.guarded,
            compressed=head.header("content-encoding") not in (None, "", "identity"),
        )
        if reason is not None:
            raise self._refuse(upstream.host, upstream.port, head.method, reason)
