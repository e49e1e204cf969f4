"""Limits by default (issue 13): `sandbox exec` without `--timeout` ran for as long as its
command liked, and a command that ptraces its own PID 1 was never killed. Every command has a
timeout, and when it fires nothing the command started is left, cgroups or not."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
import uuid
from pathlib import Path

import pytest

from bot.sandbox import bwrap, command
from bot.sandbox.base import EXIT_TIMEOUT, Limits, SandboxSpec
from bot.sandbox.bwrap import BwrapSandbox
from tests.adversarial.attack import pids_with

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

# Attaches to the sandbox's PID 1 (stopping it), leaves a detached daemon, then sleeps.
ESCAPE = """
import ctypes, subprocess, sys, time
subprocess.Popen(["setsid", "sh", "-c", "sleep 300 # " + sys.argv[1]], start_new_session=True)
print("attached", ctypes.CDLL(None).ptrace(16, 1, 0, 0), flush=True)
time.sleep(300)
"""


def test_sandbox_exec_has_a_default_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.cli import _parser

    monkeypatch.setattr(command, "DEFAULT_TIMEOUT_SECONDS", 1.0)
    monkeypatch.setattr(sys, "stdin", None)
    args = _parser().parse_args(["sandbox", "exec", "--", "sleep", "30"])
    started = time.monotonic()
    assert command.exec_command(args) == EXIT_TIMEOUT
    assert time.monotonic() - started < 15


@pytest.mark.anyio
async def test_a_command_given_no_timeout_at_all_still_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bwrap, "DEFAULT_TIMEOUT_SECONDS", 1.0)
    spec = SandboxSpec(workspace=tmp_path, limits=Limits(timeout_seconds=None))
    async with BwrapSandbox(spec) as sandbox:
        done = await sandbox.exec(["sleep", "30"])
    assert done.timed_out and done.exit_code == EXIT_TIMEOUT


@pytest.mark.anyio
@pytest.mark.parametrize("cgroups", [True, False])
async def test_ptracing_pid_1_and_detaching_escape_no_timeout(
    tmp_path: Path, cgroups: bool
) -> None:
    marker = f"escape-{uuid.uuid4().hex}"
    options = {} if cgroups else {"cgroup_root": tmp_path / "no-cgroups"}
    spec = SandboxSpec(workspace=tmp_path, limits=Limits(timeout_seconds=2))
    async with BwrapSandbox(spec, **options) as sandbox:  # type: ignore[arg-type]
        started = time.monotonic()
        done = await sandbox.exec(["python3", "-c", ESCAPE, marker])
        took = time.monotonic() - started
        assert done.stdout.startswith(b"attached 0"), done  # the trick itself worked inside
        assert done.timed_out and done.exit_code == EXIT_TIMEOUT and took < 10
        for _ in range(50):
            if not pids_with(marker):
                break
            await asyncio.sleep(0.1)
        assert pids_with(marker) == []  # while the sandbox is still open
        later = await sandbox.exec(["true"])
        assert later.exit_code == 0


def test_help_says_the_default() -> None:
    import subprocess

    shown = subprocess.run(
        [sys.executable, "-m", "bot.cli", "sandbox", "exec", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "(default 600)" in shown.stdout.replace("\n", " ").replace("  ", " ")
