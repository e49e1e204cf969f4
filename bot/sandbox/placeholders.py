"""Placeholder secrets, pure: the sandbox only ever holds a random stand-in for each secret; the
egress proxy swaps it for the real value in requests to that secret's hosts, blocks it anywhere
else, and swaps real values (and their encoded forms) back in responses so they never reach the
sandbox either."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bot.sandbox import masking
from bot.sandbox.allowlist import parse_entry

# A guarded value shorter than this is too likely to occur by chance in ordinary traffic.
MIN_GUARDED = 8

# A secret's hosts: one `HOST[:PORT]` text or several. Without a port, any port of that host.
Hosts = str | Sequence[str]


@dataclass(frozen=True)
class Secret:
    name: str
    value: str
    # (host, port or None for any port), lower case.
    hosts: tuple[tuple[str, int | None], ...]
    placeholder: str

    def goes_to(self, host: str, port: int) -> bool:
        host = host.lower().rstrip(".")
        return any(h == host and p in (None, port) for h, p in self.hosts)

    @property
    def host_entries(self) -> list[str]:
        """The hosts as allowlist entries (no port: the default ports)."""
        entries = []
        for host, port in self.hosts:
            bracketed = f"[{host}]" if ":" in host else host
            entries.append(bracketed if port is None else f"{bracketed}:{port}")
        return entries


def parse_hosts(hosts: Hosts) -> tuple[tuple[str, int | None], ...]:
    """`api.example.com`, `api.example.com:8443`, `[::1]:8443` -> (host, port or None).
    ValueError if an entry is not a HOST[:PORT]."""
    texts = [hosts] if isinstance(hosts, str) else list(hosts)
    return tuple((entry.host, entry.port) for entry in map(parse_entry, texts))


def make_placeholder(name: str) -> str:
    return f"SHIPMATE_PLACEHOLDER_{name.upper()}_{secrets.token_hex(12)}"


def build(secrets_by_name: Mapping[str, tuple[str, Hosts]]) -> dict[str, Secret]:
    """NAME -> (real value, host or hosts) into NAME -> Secret with a fresh placeholder."""
    return {
        name: Secret(name, value, parse_hosts(hosts), make_placeholder(name))
        for name, (value, hosts) in secrets_by_name.items()
    }


def misdirected(data: bytes, host: str, port: int, table: Mapping[str, Secret]) -> list[str]:
    """Names of secrets whose placeholder appears in `data` bound for a host (or port) that is
    not one of theirs."""
    return [
        s.name
        for s in table.values()
        if s.placeholder.encode() in data and not s.goes_to(host, port)
    ]


def substitutes(data: bytes, host: str, port: int, table: Mapping[str, Secret]) -> bool:
    """Whether `data` holds a placeholder the proxy would replace for `host:port`."""
    return any(s.placeholder.encode() in data and s.goes_to(host, port) for s in table.values())


def substitute(data: bytes, host: str, port: int, table: Mapping[str, Secret]) -> bytes:
    """Placeholders of the secrets of `host:port` replaced by their real values."""
    for s in table.values():
        if s.goes_to(host, port):
            data = data.replace(s.placeholder.encode(), s.value.encode())
    return data


class StreamMasker(masking.StreamMasker):
    """Every form of every real value in `table` (as is, URL-encoded, hex, base64 at each
    alignment, JSON-escaped, reversed) replaced by the same form of its placeholder, over a
    stream, a value split across two chunks included."""

    def __init__(self, table: Mapping[str, Secret]) -> None:
        super().__init__(masking.replacements({s.value: s.placeholder for s in table.values()}))


def guarded_forms(values: Iterable[str]) -> tuple[bytes, ...]:
    """The byte forms a request may carry a secret value in: as is, URL-encoded, hex, base64 at
    each of the three alignments it can take inside a longer base64 text, and more
    (`masking.encoded_forms`). Values shorter than MIN_GUARDED are not guarded."""
    forms: set[bytes] = set()
    for value in values:
        if len(value.encode()) >= MIN_GUARDED:
            forms.update(masking.encoded_forms(value, min_length=MIN_GUARDED))
    return tuple(sorted(forms))


def carries(data: bytes, forms: Iterable[bytes]) -> bool:
    """Whether `data` holds any of the guarded `forms`."""
    return any(form in data for form in forms)


def screen(
    outgoing: bytes,
    host: str,
    port: int,
    table: Mapping[str, Secret],
    guarded: tuple[bytes, ...],
    *,
    compressed: bool,
) -> str | None:
    """Why a request (its target, headers and body as sent) must not go to `host:port`: it
    carries a value found in the checkout (or a compressed body that could hide one), or a
    placeholder bound for a host that is not its secret's. None when it may go."""
    if guarded and compressed:
        return (
            "a compressed request body cannot be checked for the repository's secrets, "
            "so it was blocked"
        )
    if guarded and carries(outgoing, guarded):
        return (
            "the request carries a secret value found in the repository's files; "
            "secrets in the checkout never leave the sandbox, so it was blocked"
        )
    wrong = misdirected(outgoing, host, port, table)
    if wrong:
        return (
            f"a placeholder for secret {', '.join(sorted(wrong))} was sent to {host}:{port}, "
            "which is not one of that secret's hosts; the request was blocked"
        )
    return None
