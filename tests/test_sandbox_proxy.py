"""The egress proxy end to end: curl in a real sandbox -> 127.0.0.1:3128 in the sandbox's network
namespace (a listening socket the proxy holds) -> local HTTP and HTTPS upstreams on 127.0.0.2 (127.0.0.1 is NO_PROXY inside, by design).

Loopback is refused as a destination unless the operator allows the range, so these tests allow
127.0.0.0/8 as the operator would (tests/adversarial/ shows the refusal without it)."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox import open_sandbox
from bot.sandbox.allowlist import Allowlist, parse_entry
from bot.sandbox.base import SandboxSpec
from bot.sandbox.ca import CertificateAuthority
from bot.sandbox.placeholders import StreamMasker, build, misdirected, substitute
from bot.sandbox.proxy import EgressEvent

pytestmark = pytest.mark.anyio
needs_sandbox = pytest.mark.skipif(
    shutil.which("bwrap") is None or shutil.which("curl") is None,
    reason="needs bwrap and curl",
)
REAL = "real-token-7f3a9c"
LOOPBACK = ("127.0.0.0/8",)


class Echo:
    """An upstream that answers with the request it received (head and body)."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length)
        self.seen.append(head + body)
        answer = b"echo:" + head + body
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(answer)
            + answer
        )
        await writer.drain()
        writer.close()


class GzipEcho(Echo):
    """Echoes the request gzip-compressed when the client accepts gzip, or always if `stubborn`."""

    def __init__(self, stubborn: bool = False) -> None:
        super().__init__()
        self.stubborn = stubborn

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.seen.append(head)
        answer = b"echo:" + head
        if (
            self.stubborn
            or b"gzip" in head.lower().split(b"accept-encoding:")[-1].split(b"\r\n")[0]
        ):
            answer = gzip.compress(answer)
            extra = b"Content-Encoding: gzip\r\n"
        else:
            extra = b""
        writer.write(
            b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (extra, len(answer))
            + answer
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def http_upstream() -> AsyncIterator[tuple[Echo, int]]:
    echo = Echo()
    server = await asyncio.start_server(echo.handle, "127.0.0.2", 0)
    yield echo, server.sockets[0].getsockname()[1]
    server.close()


@pytest.fixture
async def https_upstream(tmp_path: Path) -> AsyncIterator[tuple[Echo, int, ssl.SSLContext]]:
    upstream_ca = CertificateAuthority.load_or_create(tmp_path / "upstream-ca")
    server_ctx = upstream_ca.leaf_context("127.0.0.2")
    client_ctx = ssl.create_default_context(cadata=upstream_ca.cert_pem.decode())
    echo = Echo()
    server = await asyncio.start_server(echo.handle, "127.0.0.2", 0, ssl=server_ctx)
    yield echo, server.sockets[0].getsockname()[1], client_ctx
    server.close()


def _spec(
    tmp_path: Path, allow: tuple[str, ...], secrets: dict[str, tuple[str, str]]
) -> SandboxSpec:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    return SandboxSpec(
        workspace=workspace,
        allow_hosts=allow,
        secrets=secrets,
        task_id="t1",
        allow_networks=LOOPBACK,
    )


@needs_sandbox
async def test_allowed_host_over_http_with_placeholder_substituted(
    tmp_path: Path, http_upstream: tuple[Echo, int]
) -> None:
    echo, port = http_upstream
    events: list[EgressEvent] = []
    spec = _spec(tmp_path, (f"127.0.0.2:{port}",), {"API_TOKEN": (REAL, "127.0.0.2")})
    async with open_sandbox(spec, audit=events.append, ca_dir=tmp_path / "ca") as sandbox:
        result = await sandbox.exec(
            [
                "bash",
                "-c",
                f'echo "inside=$API_TOKEN"; curl -s -H "Authorization: Bearer $API_TOKEN" -d "t=$API_TOKEN" http://127.0.0.2:{port}/x',
            ]
        )
    out = result.stdout.decode()
    assert REAL not in out  # neither in the env nor echoed back
    assert "inside=SHIPMATE_PLACEHOLDER_API_TOKEN_" in out and "echo:POST /x" in out
    (request,) = echo.seen
    assert f"Authorization: Bearer {REAL}".encode() in request and request.endswith(
        f"t={REAL}".encode()
    )
    assert [(e.host, e.allowed, e.reason) for e in events] == [("127.0.0.2", True, "forwarded")]


@needs_sandbox
async def test_placeholder_over_https_through_the_per_install_ca(
    tmp_path: Path, https_upstream: tuple[Echo, int, ssl.SSLContext]
) -> None:
    echo, port, upstream_ctx = https_upstream
    spec = _spec(tmp_path, (f"127.0.0.2:{port}",), {"API_TOKEN": (REAL, "127.0.0.2")})
    async with open_sandbox(spec, ca_dir=tmp_path / "ca", upstream_ssl=upstream_ctx) as sandbox:
        result = await sandbox.exec(
            [
                "bash",
                "-c",
                f'curl -sS -H "X-Key: $API_TOKEN" --data-binary "$API_TOKEN" https://127.0.0.2:{port}/secure',
            ]
        )
        env = await sandbox.exec(["bash", "-c", "env; cat /proc/self/environ"])
    assert result.exit_code == 0, result.stderr.decode()
    assert b"echo:POST /secure" in result.stdout and REAL.encode() not in result.stdout
    (request,) = echo.seen
    assert f"X-Key: {REAL}".encode() in request and request.endswith(REAL.encode())
    assert REAL.encode() not in env.stdout


@needs_sandbox
async def test_denied_hosts_and_misdirected_placeholders_are_refused_and_logged(
    tmp_path: Path, http_upstream: tuple[Echo, int]
) -> None:
    echo, port = http_upstream
    events: list[EgressEvent] = []
    spec = _spec(tmp_path, (f"127.0.0.2:{port}",), {"API_TOKEN": (REAL, "api.example.com")})
    async with open_sandbox(spec, audit=events.append, ca_dir=tmp_path / "ca") as sandbox:
        denied = await sandbox.exec(["curl", "-s", "-i", "http://example.org/"])
        leak = await sandbox.exec(
            ["bash", "-c", f'curl -s -i "http://127.0.0.2:{port}/?k=$API_TOKEN"']
        )
    assert b"403 Forbidden" in denied.stdout and b"not on this task's allowlist" in denied.stdout
    assert b"403 Forbidden" in leak.stdout and b"API_TOKEN" in leak.stdout
    assert echo.seen == []
    assert [(e.host, e.allowed) for e in events] == [("example.org", False), ("127.0.0.2", False)]
    assert "placeholder" in events[1].reason


def test_allowlist_entries() -> None:
    allow = Allowlist(["pypi.org", "files.example.com:8443", "*.npmjs.org"])
    assert allow.allows("pypi.org", 443) and allow.allows("PYPI.org", 80)
    assert not allow.allows("pypi.org", 22)
    assert allow.allows("files.example.com", 8443) and not allow.allows("files.example.com", 443)
    assert allow.allows("registry.npmjs.org", 443) and not allow.allows("npmjs.org.evil.com", 443)
    with pytest.raises(ValueError):
        parse_entry("http://pypi.org/simple")


def test_placeholders_pure() -> None:
    table = build({"TOKEN": ("sekret-value", "api.example.com")})
    placeholder = table["TOKEN"].placeholder
    data = f"auth={placeholder}".encode()
    assert substitute(data, "api.example.com", 443, table) == b"auth=sekret-value"
    assert substitute(data, "other.com", 443, table) == data
    assert misdirected(data, "other.com", 443, table) == ["TOKEN"]
    assert misdirected(data, "api.example.com", 443, table) == []
    masker = StreamMasker(table)
    streamed = masker.feed(b"xx sekret-") + masker.feed(b"value yy") + masker.flush()
    assert streamed == f"xx {placeholder} yy".encode()


def test_ca_is_persisted_and_leaf_chains_to_it(tmp_path: Path) -> None:
    first = CertificateAuthority.load_or_create(tmp_path / "ca")
    again = CertificateAuthority.load_or_create(tmp_path / "ca")
    assert first.cert_pem == again.cert_pem
    assert oct((tmp_path / "ca" / "ca.key").stat().st_mode & 0o777) == "0o600"
    from cryptography import x509

    cert_pem, _ = first.leaf("pypi.org")
    leaf = x509.load_pem_x509_certificate(cert_pem)
    leaf.verify_directly_issued_by(first.cert)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["pypi.org"]


async def test_malformed_request_gets_400(tmp_path: Path) -> None:
    from bot.sandbox.proxy import EgressProxy

    proxy = EgressProxy(
        socket_path=tmp_path / "p.sock",
        allow_hosts=[],
        secrets={},
        ca=None,
        audit=None,
        task_id="t",
    )
    await proxy.start()
    try:
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / "p.sock"))
        writer.write(b"NONSENSE\r\n\r\n")
        await writer.drain()
        answer = await reader.read()
        writer.close()
    finally:
        await proxy.stop()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request")


@needs_sandbox
async def test_no_process_inside_sees_the_host_environment_or_a_real_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_upstream: tuple[Echo, int]
) -> None:
    _, port = http_upstream
    canary = "canary-4d1e0b7f"
    monkeypatch.setenv("SHIPMATE_TEST_CANARY", canary)
    spec = _spec(tmp_path, (f"127.0.0.2:{port}",), {"API_TOKEN": (REAL, "127.0.0.2")})
    async with open_sandbox(spec, ca_dir=tmp_path / "ca") as sandbox:
        result = await sandbox.exec(
            [
                "bash",
                "-c",
                "cat /proc/1/environ | tr '\\0' '\\n' | grep -c . ; ps -eo args; "
                "for f in /proc/[0-9]*/environ; do echo \"== $f\"; tr '\\0' '\\n' < $f; done",
            ]
        )
    out = result.stdout.decode()
    assert result.exit_code == 0, result.stderr.decode()
    assert int(out.splitlines()[0]) > 0  # PID 1 (bwrap) is readable, and has an environment
    assert out.count("== /proc/") >= 2  # bwrap's PID 1 and this shell, at least
    assert canary not in out and "SHIPMATE_TEST_CANARY" not in out
    assert REAL not in out and "SHIPMATE_PLACEHOLDER_API_TOKEN_" in out


@needs_sandbox
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_compressed_answers_cannot_carry_a_real_secret_back(
    tmp_path: Path, scheme: str
) -> None:
    upstream_ca = CertificateAuthority.load_or_create(tmp_path / "upstream-ca")
    tls = upstream_ca.leaf_context("127.0.0.2") if scheme == "https" else None
    polite, stubborn = GzipEcho(), GzipEcho(stubborn=True)
    servers = [
        await asyncio.start_server(e.handle, "127.0.0.2", 0, ssl=tls) for e in (polite, stubborn)
    ]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    spec = _spec(
        tmp_path, tuple(f"127.0.0.2:{p}" for p in ports), {"API_TOKEN": (REAL, "127.0.0.2")}
    )
    events: list[EgressEvent] = []
    try:
        async with open_sandbox(
            spec,
            audit=events.append,
            ca_dir=tmp_path / "ca",
            upstream_ssl=ssl.create_default_context(cadata=upstream_ca.cert_pem.decode()),
        ) as sandbox:
            curl = 'curl -sS --compressed -H "X-Key: $API_TOKEN" {}://127.0.0.2:{}/z'
            honoured = await sandbox.exec(["bash", "-c", curl.format(scheme, ports[0])])
            ignored = await sandbox.exec(["bash", "-c", curl.format(scheme, ports[1]) + " -i"])
    finally:
        for server in servers:
            server.close()
    assert honoured.exit_code == 0, honoured.stderr.decode()
    assert b"echo:GET /z" in honoured.stdout and REAL.encode() not in honoured.stdout
    assert b"SHIPMATE_PLACEHOLDER_API_TOKEN_" in honoured.stdout  # masked, then shown
    (sent,) = polite.seen
    assert f"X-Key: {REAL}".encode() in sent and b"Accept-Encoding: identity" in sent
    assert b"gzip" not in sent.lower()
    assert b"502 Bad Gateway" in ignored.stdout and b"Content-Encoding: gzip" in ignored.stdout
    assert REAL.encode() not in ignored.stdout and b"\x1f\x8b" not in ignored.stdout
    assert [e.allowed for e in events] == [True, False]


@needs_sandbox
@pytest.mark.parametrize("own_ca", [True, False])
async def test_the_sandbox_sees_neither_the_proxy_socket_nor_the_ca_key(
    tmp_path: Path, http_upstream: tuple[Echo, int], own_ca: bool
) -> None:
    _, port = http_upstream
    spec = _spec(tmp_path, (f"127.0.0.2:{port}",), {"API_TOKEN": (REAL, "127.0.0.2")})
    ca_dir = tmp_path / "ca" if own_ca else None
    async with open_sandbox(spec, ca_dir=ca_dir) as sandbox:
        assert sandbox.egress_socket is not None
        socket_path = sandbox.egress_socket
        probe = await sandbox.exec(
            [
                "bash",
                "-c",
                f"ls -d {socket_path.parent} /run/shipmate 2>&1 | grep -c 'No such file'; "
                "find / -path /proc -prune -o -type s -print 2>/dev/null | grep -c . ; "
                "grep -rl 'PRIVATE KEY' /run /etc/ssl /tmp /home /workspace 2>/dev/null; "
                f"curl -s -o /dev/null -w 'http=%{{http_code}}' http://127.0.0.2:{port}/",
            ]
        )
        assert socket_path.is_socket()  # still there for the next command
    out = probe.stdout.decode().split()
    # The socket's folder (and the old mount point) are not there; no socket anywhere; no file
    # with a private key anywhere the sandbox can look; the bridge on loopback still works.
    assert out == ["2", "0", "http=200"], probe.stderr.decode()
    if own_ca:
        assert (tmp_path / "ca" / "ca.key").exists()  # the install's CA is kept


@needs_sandbox
async def test_https_to_a_refused_host_and_a_misdirected_placeholder_over_https(
    tmp_path: Path, https_upstream: tuple[Echo, int, ssl.SSLContext]
) -> None:
    echo, port, upstream_ctx = https_upstream
    events: list[EgressEvent] = []
    spec = _spec(tmp_path, (f"127.0.0.2:{port}",), {"API_TOKEN": (REAL, "api.example.com")})
    async with open_sandbox(
        spec, audit=events.append, ca_dir=tmp_path / "ca", upstream_ssl=upstream_ctx
    ) as sandbox:
        refused = await sandbox.exec(["curl", "-sS", "https://example.org/"])
        leak = await sandbox.exec(
            ["bash", "-c", f'curl -sS -i -H "X-Key: $API_TOKEN" https://127.0.0.2:{port}/x']
        )
        fine = await sandbox.exec(["curl", "-sS", f"https://127.0.0.2:{port}/ok"])
    assert refused.exit_code != 0 and b"CONNECT" in refused.stderr and b"403" in refused.stderr
    assert b"403 Forbidden" in leak.stdout and b"API_TOKEN" in leak.stdout
    assert b"echo:GET /ok" in fine.stdout
    (only,) = echo.seen  # the misdirected request never left
    assert only.startswith(b"GET /ok ")
    assert [(e.host, e.allowed) for e in events] == [
        ("example.org", False),
        ("127.0.0.2", False),
        ("127.0.0.2", True),
    ]
    assert "not on this task's allowlist" in events[0].reason
    assert "placeholder for secret API_TOKEN" in events[1].reason


@needs_sandbox
async def test_python_and_git_trust_the_sandbox_ca_through_its_variables(
    tmp_path: Path, https_upstream: tuple[Echo, int, ssl.SSLContext]
) -> None:
    echo, port, upstream_ctx = https_upstream
    spec = _spec(tmp_path, (f"127.0.0.2:{port}",), {"API_TOKEN": (REAL, "127.0.0.2")})
    url = f"https://127.0.0.2:{port}"
    fetch = (
        "import os, urllib.request\n"
        "print(os.environ['SSL_CERT_FILE'], os.environ['REQUESTS_CA_BUNDLE'])\n"
        f"print(urllib.request.urlopen('{url}/py').read().decode())\n"
    )
    other = CertificateAuthority.load_or_create(tmp_path / "other-ca").cert_pem
    (spec.workspace / "other.pem").write_bytes(other)  # a CA that did not sign the leaf
    async with open_sandbox(spec, ca_dir=tmp_path / "ca", upstream_ssl=upstream_ctx) as sandbox:
        python = await sandbox.exec(["python3", "-c", fetch])
        git = await sandbox.exec(["bash", "-c", f"echo $GIT_SSL_CAINFO; git ls-remote {url}/repo"])
        untrusted = await sandbox.exec(
            [
                "bash",
                "-c",
                f"GIT_SSL_CAINFO=other.pem GIT_SSL_CAPATH=/none git ls-remote {url}/r2",
            ]
        )
    assert python.exit_code == 0, python.stderr.decode()
    assert python.stdout.decode().startswith(
        "/etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\necho:GET /py "
    )
    assert git.stdout.startswith(b"/etc/ssl/certs/ca-certificates.crt\n")
    assert b"SSL certificate" not in git.stderr and b"certificate" not in git.stderr
    assert untrusted.exit_code != 0 and b"certificate verification failed" in untrusted.stderr
    paths = [head.split(b" ")[1] for head in echo.seen]
    assert paths == [b"/py", b"/repo/info/refs?service=git-upload-pack"]


GUARDED = "Jx7/Kq2+Lm9pRt4vWz8bN3cF6hY1sD5g"


def test_guarded_forms_find_a_value_however_it_is_encoded() -> None:
    import base64
    from urllib.parse import quote

    from bot.sandbox.placeholders import carries, guarded_forms

    forms = guarded_forms([GUARDED, "short"])
    assert not carries(b"short and ordinary text", forms)  # too short to guard
    for prefix in (b"", b"a", b"ab", b"KEY="):
        blob = prefix + GUARDED.encode() + b"\ntrailing"
        assert carries(base64.b64encode(blob), forms), prefix
    assert carries(b"k=" + quote(GUARDED, safe="").encode(), forms)
    assert carries(GUARDED.encode().hex().encode(), forms)
    assert not carries(base64.b64encode(b"something else entirely, of the same length"), forms)


@needs_sandbox
async def test_a_secret_found_in_the_checkout_never_leaves_even_to_an_allowed_host(
    tmp_path: Path,
    http_upstream: tuple[Echo, int],
    https_upstream: tuple[Echo, int, ssl.SSLContext],
) -> None:
    echo, port = http_upstream
    secure, secure_port, upstream_ctx = https_upstream
    events: list[EgressEvent] = []
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / ".env").write_text(f"AWS_SECRET_ACCESS_KEY={GUARDED}\n")
    spec = SandboxSpec(
        workspace=workspace,
        allow_hosts=(f"127.0.0.2:{port}", f"127.0.0.2:{secure_port}"),
        guarded=(GUARDED,),
        task_id="t1",
        allow_networks=LOOPBACK,
    )
    async with open_sandbox(
        spec, audit=events.append, ca_dir=tmp_path / "ca", upstream_ssl=upstream_ctx
    ) as sandbox:
        plain = await sandbox.exec(
            ["curl", "-s", "-i", "--data-binary", "@.env", f"http://127.0.0.2:{port}/collect"]
        )
        encoded = await sandbox.exec(
            [
                "bash",
                "-c",
                f'curl -sS -i -d "x=$(base64 -w0 .env)" https://127.0.0.2:{secure_port}/c',
            ]
        )
        ordinary = await sandbox.exec(
            ["curl", "-sS", "-d", "nothing secret", f"https://127.0.0.2:{secure_port}/ok"]
        )
    assert b"403 Forbidden" in plain.stdout and b"found in the repository" in plain.stdout
    assert b"403 Forbidden" in encoded.stdout, encoded.stderr.decode()
    assert ordinary.exit_code == 0 and b"echo:POST /ok" in ordinary.stdout
    assert echo.seen == [] and len(secure.seen) == 1
    assert [(e.allowed, e.reason.split(";")[0]) for e in events] == [
        (False, "the request carries a secret value found in the repository's files"),
        (False, "the request carries a secret value found in the repository's files"),
        (True, "forwarded"),
    ]
