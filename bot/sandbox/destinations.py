"""Where the egress proxy may connect: an allowlisted name is not enough, the address it resolves
to must be on the public internet too, or inside a range the operator allowed
(`SHIPMATE_EGRESS_ALLOW_NETWORKS`, `--allow-network`). Otherwise a repository listing
`127.0.0.1:6379` in `network.allow`, or a name whose DNS answer points at 10.0.0.5 or at the cloud
metadata address, reaches the host's own services.

The proxy resolves a name once, checks every address here, and connects to the address it checked,
so a second lookup (DNS rebinding) never decides. Classification is pure; `resolve` is the edge.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


class DestinationRefused(Exception):
    """No address of the host may be reached. `str()` says which address and why, one line."""


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """`10.20.0.0/16`, `127.0.0.0/8`, `fd00::/8` (a bare address is a /32 or /128). ValueError
    names the bad entry."""
    networks: list[Network] = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a network in CIDR form ({exc})") from None
    return tuple(networks)


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for and the kernel or a translator would reach:
    IPv4-mapped (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _category(address: Address) -> str | None:
    """Why `address` is not on the public internet, or None. Each flag is checked on its own:
    `is_global` alone is True for multicast, IPv6 site-local, 6to4 and NAT64 addresses."""
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (the cloud metadata address among them)"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return "carrier-grade NAT (100.64.0.0/10)"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if isinstance(address, ipaddress.IPv6Address) and address in NAT64_LOCAL:
        return "local-use NAT64"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not globally routable"
    return None


def refusal(address: Address, allowed: Sequence[Network]) -> str | None:
    """Why the proxy must not connect to `address`, or None when it may: a public address, or one
    inside a range the operator allowed. An IPv6 address standing for an IPv4 one is judged by
    the IPv4 address (and allowed by a range holding either)."""
    inner = embedded_ipv4(address)
    if any(address in net or (inner is not None and inner in net) for net in allowed):
        return None
    if inner is not None:
        why = _category(inner)
        return f"{address} stands for {inner}, which is {why}" if why else None
    why = _category(address)
    return f"{address} is {why}" if why else None


async def resolve(host: str, port: int, allowed: Sequence[Network]) -> list[Address]:
    """The addresses of `host` the proxy may connect to, in the resolver's order; raise
    `DestinationRefused` when none (saying why for the first refused one)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationRefused(f"{host} does not resolve ({exc})") from None
    addresses: list[Address] = []
    reasons: list[str] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        why = refusal(address, allowed)
        if why is not None:
            reasons.append(why)
        elif address not in addresses:
            addresses.append(address)
    if not addresses:
        first = reasons[0] if reasons else "no address"
        raise DestinationRefused(
            f"{host} resolves to {first}; the egress proxy reaches only public addresses "
            "unless the operator allows the range (SHIPMATE_EGRESS_ALLOW_NETWORKS)"
        )
    return addresses
