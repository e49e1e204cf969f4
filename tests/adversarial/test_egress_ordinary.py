"""Ordinary work through the hardened egress proxy still passes: a package manager's setup
(pip, from a package index served on loopback, which the operator opens for the test as an
internal registry would be) while the task holds a secret, so every answer is decoded, masked
and re-framed on its way in."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.sandbox import open_sandbox
from bot.sandbox.base import SandboxSpec
from tests.adversarial.egress import LOOPBACK, needs_sandbox

pytestmark = [pytest.mark.anyio, needs_sandbox]


def _wheel() -> bytes:
    """A minimal pure-Python wheel of `shipmate-probe` 1.0."""
    files = {
        "shipmate_probe/__init__.py": b"ANSWER = 42\n",
        "shipmate_probe-1.0.dist-info/METADATA": (
            b"Metadata-Version: 2.1\nName: shipmate-probe\nVersion: 1.0\n"
        ),
        "shipmate_probe-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("shipmate_probe-1.0.dist-info/RECORD,,")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("shipmate_probe-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return buffer.getvalue()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def package_index(tmp_path: Path) -> Iterator[int]:
    root = tmp_path / "index"
    project = root / "simple" / "shipmate-probe"
    project.mkdir(parents=True)
    name = "shipmate_probe-1.0-py3-none-any.whl"
    (root / name).write_bytes(_wheel())
    (project / "index.html").write_text(f'<a href="/{name}">{name}</a>\n')
    server = ThreadingHTTPServer(("127.0.0.2", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


async def test_pip_installs_from_an_index_through_the_proxy(
    tmp_path: Path, package_index: int
) -> None:
    port = package_index
    (tmp_path / "ws").mkdir()
    spec = SandboxSpec(
        workspace=tmp_path / "ws",
        allow_hosts=(f"127.0.0.2:{port}",),
        secrets={"DEPLOY_TOKEN": ("deploy-real-2b3c4d5e6f", "deploy.example.com")},
        allow_networks=LOOPBACK,
        task_id="pip",
    )
    install = (
        "pip install -q --no-cache-dir --disable-pip-version-check --target /workspace/deps "
        f"--index-url http://127.0.0.2:{port}/simple/ --trusted-host 127.0.0.2 shipmate-probe "
        "&& PYTHONPATH=/workspace/deps python3 -c 'import shipmate_probe; print(shipmate_probe.ANSWER)'"
    )
    async with open_sandbox(spec, ca_dir=tmp_path / "ca") as sandbox:
        result = await sandbox.exec(["bash", "-c", install])
    assert result.exit_code == 0, result.stderr.decode()
    assert result.stdout.strip().endswith(b"42")
