"""One connection from a sandbox to the egress proxy (its server: bot/sandbox/proxy.py): the
request read, screened, and forwarded or refused, and recorded either way.

A request goes out only to an allowlisted host (a secret's hosts are on the list), at the
addresses its name resolves to, public ones only unless the operator allowed a range
(bot/sandbox/destinations.py), with its Host header pinned to that host, and carrying neither a
placeholder bound for another host nor a value found in the checkout. Placeholders become the
real values only in requests to that secret's hosts, and every response is masked of the real
values before it reaches the sandbox. HTTPS goes through a plain tunnel unless the task has
placeholder secrets or guarded values: then it is intercepted with a leaf certificate from the
per-install CA.

One request per connection (`Connection: close` both ways) keeps the relay simple and correct.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from bot.sandbox import destinations, placeholders
from bot.sandbox.allowlist import Allowlist, split_host_port
from bot.sandbox.ca import CertificateAuthority
from bot.sandbox.egress_log import EgressLog, log
from bot.sandbox.http1 import TIMEOUT, Head, ProxyError, read_body, read_head, refusal_response
from bot.sandbox.relay import Upstream, outgoing_headers, pin_host, relay_response, tunnel


class Forwarder:
    """What one task's sandbox may send, and where: serves each connection made to its proxy."""

    def __init__(
        self,
        *,
        allow_hosts: Sequence[str],
        secrets: Mapping[str, tuple[str, placeholders.Hosts]],
        guarded: tuple[bytes, ...],
        allow_networks: Sequence[str],
        allow_hint: str,
        ca: CertificateAuthority | None,
        upstream_ssl: ssl.SSLContext,
        egress_log: EgressLog,
    ) -> None:
        # Secret values found in the checkout (`placeholders.guarded_forms`): no request may
        # carry one out, to any host.
        self.guarded = guarded
        self.allowlist = Allowlist(list(allow_hosts))
        self.table = placeholders.build(secrets)
        # A secret's hosts are reachable even if the allowlist forgot them.
        for secret in self.table.values():
            self.allowlist.entries.extend(Allowlist(secret.host_entries).entries)
        # Ranges the operator opened beyond the public internet (never the repository).
        self.networks = destinations.parse_networks(allow_networks)
        # How a refused host can be allowed ({host}, {port}): bot/sandbox/base.py.
        self.allow_hint = allow_hint
        self.ca = ca
        self.upstream_ssl = upstream_ssl
        self.egress_log = egress_log

    @property
    def intercept(self) -> bool:
        return bool(self.table or self.guarded) and self.ca is not None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
        self.egress_log.record(host, port, method, 0, 0, False, reason)
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
                self.egress_log.record(host, port, "CONNECT", 0, 0, True, "upstream unreachable")
                raise
            self.egress_log.record(host, port, "CONNECT", counts[0], counts[1], True, "tunnel")
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
            self.egress_log.record(host, port, head.method, 0, 0, True, reason)
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
        self.egress_log.record(
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
