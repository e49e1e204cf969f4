"""The sandbox runtime. `open_sandbox(spec)` starts the best backend this host offers (today:
bubblewrap) with its egress proxy, or raises `SandboxUnavailable`: Shipmate never runs a command
unsandboxed. The proxy runs even for a task that may reach no host, so that a command's request
always meets the proxy's readable 403 (saying how to allow the host), never a bare "could not
resolve host"."""

from __future__ import annotations

import contextlib
import shutil
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.sandbox.base import (
    EXIT_SANDBOX_FAILED,
    EXIT_TIMEOUT,
    ExecResult,
    Limits,
    Sandbox,
    SandboxSpec,
    SandboxUnavailable,
)
from bot.sandbox.bwrap import BwrapSandbox

if TYPE_CHECKING:
    from bot.sandbox.proxy import EgressProxy

BRIDGE_PORT = 3128

__all__ = [
    "EXIT_SANDBOX_FAILED",
    "EXIT_TIMEOUT",
    "ExecResult",
    "Limits",
    "Sandbox",
    "SandboxSpec",
    "SandboxUnavailable",
    "open_sandbox",
]


@contextlib.asynccontextmanager
async def open_sandbox(
    spec: SandboxSpec,
    *,
    backend: str = "auto",
    bwrap: str | None = None,
    audit: Callable[..., None] | None = None,
    ca_dir: Path | None = None,
    upstream_ssl: ssl.SSLContext | None = None,
) -> AsyncIterator[BwrapSandbox]:
    """A started sandbox for `spec`; closed (and every trace removed) on exit."""
    if backend not in ("auto", "bwrap"):
        raise SandboxUnavailable(f"the {backend} backend is not available on this host")
    sandbox = BwrapSandbox(spec, bwrap=bwrap)
    proxy: EgressProxy | None = None
    private: list[Path] = []
    try:
        proxy = _egress_proxy(spec, audit, ca_dir, upstream_ssl, private)
        await proxy.start()
        sandbox.egress_socket = proxy.socket_path
        sandbox.bridge_port = BRIDGE_PORT
        sandbox.serve_bridge = proxy.serve_socket
        sandbox.ca_bundle = proxy.ca_bundle_path
        sandbox.extra_env.update(
            proxy.sandbox_env(BRIDGE_PORT, "/etc/ssl/certs/ca-certificates.crt")
        )
        yield sandbox
    finally:
        if proxy is not None:
            await proxy.stop()
        for folder in private:
            shutil.rmtree(folder, ignore_errors=True)
        await sandbox.close()


def _egress_proxy(
    spec: SandboxSpec,
    audit: Callable[..., None] | None,
    ca_dir: Path | None,
    upstream_ssl: ssl.SSLContext | None,
    private: list[Path],
) -> EgressProxy:
    """The task's egress proxy on a socket of its own; the folders made for it go in `private`."""
    from bot.sandbox.ca import CertificateAuthority
    from bot.sandbox.proxy import EgressProxy

    socket_dir = Path(tempfile.mkdtemp(prefix="shipmate-egress-"))
    private.append(socket_dir)
    ca = None
    if spec.allow_hosts or spec.secrets:  # else every request is refused before any TLS
        if ca_dir is None:
            # No install-wide CA given: a throwaway one, kept apart from anything mounted.
            ca_dir = Path(tempfile.mkdtemp(prefix="shipmate-ca-"))
            private.append(ca_dir)
        ca = CertificateAuthority.load_or_create(ca_dir)
    return EgressProxy(
        socket_path=socket_dir / "egress.sock",
        allow_hosts=spec.allow_hosts,
        secrets=spec.secrets,
        ca=ca,
        audit=audit,
        task_id=spec.task_id,
        upstream_ssl=upstream_ssl,
        guarded=spec.guarded,
        allow_networks=spec.allow_networks,
        allow_hint=spec.allow_hint,
    )
