"""The model's tools in a real bubblewrap sandbox over a folder: the editor's view, insert and
path rules, and bash's output truncation and timeouts."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.agent.tools import ToolError, Tools, file_lines, inserted, truncate
from bot.sandbox.base import SandboxSpec
from bot.sandbox.bwrap import BwrapSandbox

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
T = TypeVar("T")
EDIT = "str_replace_based_edit_tool"


def _with_tools(workspace: Path, go: Callable[[Tools], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        async with BwrapSandbox(SandboxSpec(workspace=workspace)) as sandbox:
            return await go(Tools(sandbox, **options))

    return asyncio.run(main())


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    (path / "three.txt").write_text("one\ntwo\nthree\n")
    (path / "no_newline.txt").write_text("a\nb")
    return path


def test_view_numbers_the_lines_without_a_phantom_last_line(workspace: Path) -> None:
    async def go(tools: Tools) -> list[str]:
        results = [
            await tools.run(EDIT, {"command": "view", "path": "three.txt"}),
            await tools.run(EDIT, {"command": "view", "path": "three.txt", "view_range": [2, 3]}),
            await tools.run(EDIT, {"command": "view", "path": "three.txt", "view_range": [3, -1]}),
            await tools.run(EDIT, {"command": "view", "path": "no_newline.txt"}),
            await tools.run(EDIT, {"command": "view", "path": "three.txt", "view_range": [4, 4]}),
            await tools.run(EDIT, {"command": "view", "path": "three.txt", "view_range": [3, 2]}),
        ]
        return [r.text() for r in results]

    full, middle, tail, unterminated, past_end, backwards = _with_tools(workspace, go)
    assert full.splitlines()[1:] == ["     1\tone", "     2\ttwo", "     3\tthree"]
    assert middle.splitlines()[1:] == ["     2\ttwo", "     3\tthree"]
    assert tail.splitlines()[1:] == ["     3\tthree"]
    assert unterminated.splitlines()[1:] == ["     1\ta", "     2\tb"]
    assert "the file has 3 lines" in past_end and "the file has 3 lines" in backwards


def test_insert_at_the_top_middle_and_end_keeps_the_final_newline(workspace: Path) -> None:
    async def go(tools: Tools) -> list[str]:
        calls = [
            {"insert_line": 0, "insert_text": "zero"},
            {"insert_line": 2, "insert_text": "one and a half\n"},
            {"insert_line": 5, "insert_text": "four"},
            {"insert_line": 7, "insert_text": "too far"},
            {"insert_line": -1, "insert_text": "too early"},
        ]
        results = []
        for call in calls:
            result = await tools.run(EDIT, {"command": "insert", "path": "three.txt", **call})
            results.append(result.text())
        return results

    results = _with_tools(workspace, go)
    assert (workspace / "three.txt").read_text() == (
        "zero\none\none and a half\ntwo\nthree\nfour\n"
    )
    assert "out of range: the file has 6 lines, so use 0 (the top) to 6" in results[3]
    assert "out of range" in results[4]


def test_line_helpers() -> None:
    assert file_lines("") == [] and file_lines("x") == ["x"] and file_lines("x\n\n") == ["x", ""]
    assert inserted("", 0, "x") == "x\n"
    assert inserted("a\nb", 2, "c") == "a\nb\nc"
    assert inserted("a\nb\n", 1, "") == "a\n\nb\n"
    with pytest.raises(ToolError, match="the file has 2 lines"):
        inserted("a\nb\n", 3, "c")


@pytest.mark.parametrize(
    "path", ["../outside.txt", "/workspace/../outside.txt", "sub/../../outside.txt", "/etc/passwd"]
)
def test_paths_outside_the_workspace_are_refused(workspace: Path, path: str) -> None:
    async def go(tools: Tools) -> list[Any]:
        return [
            await tools.run(EDIT, {"command": "view", "path": path}),
            await tools.run(EDIT, {"command": "create", "path": path, "file_text": "x"}),
        ]

    for result in _with_tools(workspace, go):
        assert result.is_error and "outside /workspace" in result.error
    assert not (workspace.parent / "outside.txt").exists()


def test_a_symlink_out_of_the_workspace_is_refused(workspace: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret\n")
    os.symlink(secret, workspace / "link.txt")
    os.symlink(tmp_path, workspace / "up")
    os.symlink("/etc", workspace / "etc")

    async def go(tools: Tools) -> list[Any]:
        return [
            await tools.run(EDIT, {"command": "view", "path": "link.txt"}),
            await tools.run(
                EDIT,
                {"command": "str_replace", "path": "link.txt", "old_str": "host", "new_str": "x"},
            ),
            await tools.run(EDIT, {"command": "create", "path": "up/new.txt", "file_text": "x"}),
            await tools.run(EDIT, {"command": "view", "path": "etc/hostname"}),
        ]

    for result in _with_tools(workspace, go):
        assert result.is_error and "resolves outside /workspace" in result.error
        assert "host secret" not in result.text()
    assert secret.read_text() == "host secret\n" and not (tmp_path / "new.txt").exists()


def test_long_output_keeps_head_and_tail_with_a_note(workspace: Path) -> None:
    command = "seq 1 20000"  # 108,894 characters

    async def go(tools: Tools) -> str:
        return (await tools.run("bash", {"command": command})).text()

    text = _with_tools(workspace, go)
    assert len(text) < 16_200
    assert text.startswith("1\n2\n3\n") and text.rstrip().endswith("19999\n20000")
    assert "characters cut; narrow the command to see them" in text
    assert truncate("x" * 10) == "x" * 10


def test_a_command_past_its_own_timeout_is_killed_with_a_note(workspace: Path) -> None:
    async def go(tools: Tools) -> tuple[Any, Any, float]:
        started = time.monotonic()
        own = await tools.run("bash", {"command": "sleep 20"})
        capped = await tools.run("bash", {"command": "sleep 20"}, time_left=0.5)
        return own, capped, time.monotonic() - started

    own, capped, elapsed = _with_tools(workspace, go, bash_timeout=1.0)
    assert own.is_error
    assert "(timed out after 1 s (the per-command limit) and was killed)" in own.error
    assert capped.is_error
    assert "timed out after 0.5 s (the run's time limit was reached)" in capped.error
    assert elapsed < 5
