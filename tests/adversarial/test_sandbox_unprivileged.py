"""Shipmate started as an ordinary user: its sandboxes run as that user (it has no other uid to
give), hold the same attacks, and it refuses a sandbox uid it cannot switch to. Run from a copy
of the sandbox package that user can read (the checkout may be its owner's alone)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.sandbox import identity
from bot.sandbox.base import SandboxUnavailable

ROOT = Path(__file__).resolve().parent.parent.parent
NOBODY = 65534
AS_NOBODY = ["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups", "--"]

DRIVER = """
import asyncio, json, os, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from bot.sandbox.base import Limits, SandboxSpec
from bot.sandbox.bwrap import BwrapSandbox

ATTACK = (
    "cat /proc/sys/kernel/panic > /proc/sys/kernel/panic && echo WROTE; "
    "echo from-inside > made; cp /bin/sh sh1; chmod 4755 sh1; id -u"
)

async def main():
    spec = SandboxSpec(workspace=Path(sys.argv[2]), limits=Limits(timeout_seconds=30))
    async with BwrapSandbox(spec) as sandbox:
        done = await sandbox.exec(["sh", "-c", ATTACK])
    print(json.dumps({"code": done.exit_code, "out": done.stdout.decode(),
                      "err": done.stderr.decode(), "user": sandbox.user.describe()}))

asyncio.run(main())
"""


def _interpreter() -> str | None:
    """A Python the unprivileged user can run (a pyenv one under /root is not)."""
    for candidate in (
        os.path.realpath(sys.executable),
        "/usr/bin/python3",
        "/usr/local/bin/python3",
    ):
        if os.path.exists(candidate):
            # Exec'd by the user's own process (setpriv itself may reach what that cannot).
            check = [*AS_NOBODY, "/bin/sh", "-c", 'exec "$0" -c pass', candidate]
            ran = subprocess.run(check, capture_output=True)
            if ran.returncode == 0:
                return candidate
    return None


@pytest.mark.sandbox
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root")
def test_a_non_root_shipmate_runs_sandboxes_as_itself(open_folder: Path) -> None:
    python = _interpreter()
    if python is None:
        pytest.skip("no Python interpreter the unprivileged user may run")
    copy = open_folder / "code"
    shutil.copytree(ROOT / "bot" / "sandbox", copy / "bot" / "sandbox")
    (copy / "bot" / "__init__.py").touch()
    workspace = open_folder / "ws"
    workspace.mkdir()
    os.chown(workspace, NOBODY, NOBODY)
    ran = subprocess.run(
        [*AS_NOBODY, python, "-c", DRIVER, str(copy), str(workspace)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ["PATH"]},
    )
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout.splitlines()[-1])
    assert "Shipmate's own uid" in seen["user"]
    assert "WROTE" not in seen["out"] and "Permission denied" in seen["err"]
    assert seen["out"].split()[-1] == "1000"
    for name in ("made", "sh1"):
        info = (workspace / name).stat()
        assert info.st_uid == NOBODY and info.st_mode & 0o6000 == 0, name


LIST_IMPORTS = """
import sys, sysconfig
import bot.cli
bot.cli.main(["sandbox", "exec", "--", "true"])  # what this command really imports
site = sysconfig.get_paths()["purelib"]
print("\\n".join(sorted({m.__file__[len(site) + 1:].split("/")[0] for m in list(sys.modules.values())
    if getattr(m, "__file__", None) and m.__file__.startswith(site + "/")})))
"""


def _copy_cli(target: Path) -> None:
    """The product's code and the packages `shipmate sandbox exec` imports, at `target`."""
    # Bytecode too (the same for every 3.11): the user cannot write any, and compiling it all
    # again would take seconds.
    shutil.copytree(ROOT / "bot", target / "bot")
    listed = subprocess.run(
        [sys.executable, "-c", LIST_IMPORTS], capture_output=True, text=True, check=True, cwd=ROOT
    )
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    for name in listed.stdout.split():
        source = site / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            shutil.copy(source, target / name)


@pytest.mark.sandbox
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root")
def test_a_non_root_sandbox_exec_holds_the_attacks(open_folder: Path) -> None:
    python = _interpreter()
    if python is None:
        pytest.skip("no Python interpreter the unprivileged user may run")
    _copy_cli(open_folder / "code")
    workdir = open_folder / "wd"
    workdir.mkdir()
    os.chown(workdir, NOBODY, NOBODY)
    attack = (
        "cat /proc/sys/kernel/panic > /proc/sys/kernel/panic && echo WROTE; "
        "cp /bin/sh sh1; chmod 4755 sh1; echo made > made"
    )
    command = ["sandbox", "exec", "--workdir", str(workdir), "--", "sh", "-c", attack]
    ran = subprocess.run(
        [*AS_NOBODY, python, "-m", "bot.cli", *command],
        capture_output=True,
        timeout=120,
        cwd=open_folder / "code",
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(open_folder / "code")},
    )
    assert ran.returncode == 0 and b"WROTE" not in ran.stdout, ran
    assert b"Permission denied" in ran.stderr and b"Operation not permitted" in ran.stderr
    for name in ("made", "sh1"):
        info = (workdir / name).stat()
        assert info.st_uid == NOBODY and info.st_mode & 0o6000 == 0, name
    refused = subprocess.run(
        [*AS_NOBODY, python, "-m", "bot.cli", "sandbox", "exec", "--", "true"],
        capture_output=True,
        timeout=60,
        cwd=open_folder / "code",
        env={
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(open_folder / "code"),
            identity.SETTING: "4242",
        },
    )
    assert refused.returncode == 125 and b"cannot switch users" in refused.stderr


def test_a_sandbox_uid_that_cannot_hold_is_refused() -> None:
    with pytest.raises(SandboxUnavailable, match="cannot switch users"):
        identity.resolve("4242", 1000, 1000)
    with pytest.raises(SandboxUnavailable, match="never runs as host root"):
        identity.resolve("root", 0, 0)
    with pytest.raises(SandboxUnavailable, match="never runs as host root"):
        identity.resolve("4242:0", 0, 0)
    with pytest.raises(SandboxUnavailable, match="no such user"):
        identity.resolve("no-such-user-here", 0, 0)
    assert identity.resolve(None, 1000, 1000) == identity.SandboxIdentity(
        1000, 1000, "Shipmate's own uid: it does not run as root", False
    )
    assert identity.resolve("1000", 1000, 1000).uid == 1000
    as_root = identity.resolve("4242:4343", 0, 0)
    assert (as_root.uid, as_root.gid, as_root.switch) == (4242, 4343, True)
    default = identity.resolve(None, 0, 0)
    assert default.uid != 0 and default.gid != 0 and default.switch


def test_serve_and_worker_say_at_start_when_tasks_will_be_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from structlog.testing import capture_logs

    monkeypatch.setenv(identity.SETTING, "0" if os.geteuid() == 0 else str(os.geteuid() + 1))
    with capture_logs() as logs:
        assert identity.announce() is None
    assert logs[0]["event"] == "sandbox.refused" and logs[0]["log_level"] == "error"
    monkeypatch.delenv(identity.SETTING)
    with capture_logs() as logs:
        user = identity.announce()
    assert user is not None and user.uid != 0 and logs == []


LIST_SERVE_IMPORTS = """
import sys, sysconfig, tempfile
import bot.cli, bot.app, handlers
import uvicorn.loops.auto, uvicorn.lifespan.on, uvicorn.protocols.http.httptools_impl
import uvicorn.protocols.websockets.auto, uvicorn.protocols.http.auto, uvicorn.loops.uvloop
try:
    import uvloop, httptools, websockets, h11
except ImportError:
    pass
from bot.config import Settings
from bot.db.store import Store
from bot.intake.app import create_app
settings = Settings.load(data_dir=tempfile.mkdtemp())
store = Store.from_settings(settings)
store.migrate()
create_app(settings, store, handlers.router)
site = sysconfig.get_paths()["purelib"]
print("\\n".join(sorted({m.__file__[len(site) + 1:].split("/")[0] for m in list(sys.modules.values())
    if getattr(m, "__file__", None) and m.__file__.startswith(site + "/")})))
"""


@pytest.mark.sandbox
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root")
def test_a_non_root_shipmate_serve_starts_and_says_its_sandbox_uid(open_folder: Path) -> None:
    """`shipmate serve` started by an ordinary user (from a copy that user can read) answers
    /healthz and runs sandboxes as that user; the root start is tests/test_server.py's."""
    import socket
    import time
    import urllib.request

    python = _interpreter()
    if python is None:
        pytest.skip("no Python interpreter the unprivileged user may run")
    code = open_folder / "code"
    shutil.copytree(ROOT / "bot", code / "bot")
    shutil.copytree(ROOT / "handlers", code / "handlers")
    shutil.copy(ROOT / "app.yml", code / "app.yml")
    listed = subprocess.run(
        [sys.executable, "-c", LIST_SERVE_IMPORTS],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    for name in listed.stdout.split():
        source = site / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, code / name)
    data = open_folder / "data"
    data.mkdir()
    os.chown(data, NOBODY, NOBODY)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(code),
        "SHIPMATE_DATA_DIR": str(data),
        "SHIPMATE_LOG_FORMAT": "json",
    }
    server = subprocess.Popen(
        [*AS_NOBODY, python, "-m", "bot.cli", "serve", "--port", str(port), "--workers", "1"],
        cwd=code,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/healthz", timeout=2
                ) as answer:
                    assert json.loads(answer.read()) == {"status": "ok"}
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    raise AssertionError(server.communicate()[0].decode()) from None
                time.sleep(0.3)
        assert (data / "shipmate.db").stat().st_uid == NOBODY
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode(errors="replace")
    assert "sandbox.refused" not in output, output
    doctor = subprocess.run(
        [*AS_NOBODY, python, "-m", "bot.cli", "doctor"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=code,
        env=env,
    )
    assert str(NOBODY) in doctor.stdout, doctor.stdout + doctor.stderr
