"""The demo repository's tests run in the sandbox on the host's folders: they fail on the demo's
bug (not with `command not found`) and pass once it is fixed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.config import parse_repo_config
from bot.sandbox import open_sandbox
from bot.sandbox.base import SandboxSpec
from standins.github import DEMO_FILES

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
    pytest.mark.anyio,
]


async def test_the_demo_repositorys_tests_fail_on_its_bug_and_pass_once_fixed(
    tmp_path: Path,
) -> None:
    for name, text in DEMO_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    test = parse_repo_config(DEMO_FILES[".github/shipmate.yml"]).test
    assert test is not None
    async with open_sandbox(SandboxSpec(workspace=tmp_path)) as sandbox:
        failing = await sandbox.exec(["bash", "-lc", test])
        (tmp_path / "calc.py").write_text("def add(a, b):\n    return a + b\n")
        passing = await sandbox.exec(["bash", "-lc", test])
    assert failing.exit_code == 1, failing.stderr
    assert b"AssertionError: -1 != 5" in failing.stderr
    assert passing.exit_code == 0, passing.stderr
    assert b"Ran 1 test" in passing.stderr and b"OK" in passing.stderr
