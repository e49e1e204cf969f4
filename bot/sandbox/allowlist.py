"""Which hosts a sandbox may reach: `HOST[:PORT]` entries, `*.example.com` for subdomains. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_PORTS = (80, 443)


@dataclass(frozen=True)
class Entry:
    host: str
    port: int | None

    def matches(self, host: str, port: int) -> bool:
        host = host.lower().rstrip(".")
        if self.port is None and port not in DEFAULT_PORTS:
            return False
        if self.port is not None and port != self.port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host


def parse_entry(text: str) -> Entry:
    """`pypi.org`, `files.pythonhosted.org:443`, `*.npmjs.org`, `[::1]:8080`. ValueError if bad."""
    value = text.strip().lower()
    if not value or "/" in value or " " in value:
        raise ValueError(f"not a HOST[:PORT]: {text!r}")
    port: int | None = None
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        port = int(port_text)
    else:
        host = value
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"bad port in {text!r}")
    return Entry(host.rstrip("."), port)


def split_host_port(authority: str, default_port: int) -> tuple[str, int]:
    """`example.com:8443` -> ("example.com", 8443); `[::1]` -> ("::1", default_port)."""
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if authority.count(":") == 1:
        host, _, port = authority.partition(":")
        return host, int(port)
    return authority, default_port


class Allowlist:
    def __init__(self, entries: Sequence[str]) -> None:
        self.entries = [parse_entry(e) for e in entries]

    def allows(self, host: str, port: int) -> bool:
        return any(entry.matches(host, port) for entry in self.entries)
