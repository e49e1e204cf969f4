"""The egress proxy: the only way out of a sandbox. Listens on a unix socket, and on the listening
socket each sandbox's namespace holder opens on the sandbox's loopback (127.0.0.1:3128, the
network namespace being otherwise empty) and hands over; serves plain HTTP proxy requests and
HTTPS via CONNECT, to allowlisted hosts only, and only at public addresses unless the operator
allowed a range (bot/sandbox/destinations.py). When the task has placeholder secrets, HTTPS is
intercepted with a leaf certificate from the per-install CA so the placeholder can be replaced
by the real value, only in requests to that secret's hosts, and every response is masked of the
real values before it reaches the sandbox. Every request is audited.

Here: the proxy's servers, their start and stop, and what a sandbox is told to reach it. Each
connection is served by bot/sandbox/forwarding.py and recorded by bot/sandbox/egress_log.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bot.sandbox import placeholders
from bot.sandbox.base import ALLOW_BY_REPO_CONFIG
from bot.sandbox.ca import CertificateAuthority
from bot.sandbox.egress_log import EgressEvent, EgressLog
from bot.sandbox.forwarding import Forwarder
from bot.sandbox.http1 import MAX_HEAD

__all__ = ["EgressEvent", "EgressProxy"]


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
        # Secret values found in the checkout: no request may carry one out, to any host.
        guarded_forms = placeholders.guarded_forms(guarded)
        self.egress_log = EgressLog(task_id, audit, guarded_forms)
        self.forwarder = Forwarder(
            allow_hosts=allow_hosts,
            secrets=secrets,
            guarded=guarded_forms,
            egress_log=self.egress_log,
            allow_networks=allow_networks,
            allow_hint=allow_hint,
            ca=ca,
            upstream_ssl=upstream_ssl or _system_trust(),
        )
        self.ca = ca
        self.events = self.egress_log.events
        self.ca_bundle_path: Path | None = None
        self._server: asyncio.Server | None = None
        self._listeners: list[asyncio.Server] = []
        self._bundle_dir: Path | None = None

    @property
    def placeholders(self) -> dict[str, str]:
        return {name: s.placeholder for name, s in self.forwarder.table.items()}

    @property
    def intercept(self) -> bool:
        return self.forwarder.intercept

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
            self.forwarder.serve, path=str(self.socket_path), limit=MAX_HEAD
        )
        self.socket_path.chmod(0o666)

    async def serve_socket(self, sock: socket.socket) -> None:
        """Also serve on `sock`, a listening socket made elsewhere: the one a sandbox's namespace
        holder opened on its loopback, so commands inside reach the proxy at 127.0.0.1 without a
        relay process."""
        self._listeners.append(
            await asyncio.start_server(self.forwarder.serve, sock=sock, limit=MAX_HEAD)
        )

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
