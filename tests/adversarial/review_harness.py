"""Shared by the review and reads attacks: a repository, the Messages stand-in, and `shipmate
run` on it (in-process, or as the CLI a user runs), with the real sandbox and git."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.agent.model import AnthropicModel
from bot.agent.prompts import Brief
from bot.runs.local_run import LocalRun, RunResult, run_local
from bot.sandbox.checkout import CheckoutCache, git
from standins.anthropic import MessagesStandIn, Turn

ROOT = Path(__file__).resolve().parents[2]
PLAN = "1. Look around.\n2. Change what the task needs."


def commit(repo: Path, message: str = "edit") -> str:
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo).strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "widgets"
    git("init", "-q", "-b", "main", str(path))
    (path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (path / "pkg").mkdir()
    (path / "pkg" / "mod.py").write_text("X = 1\n")
    (path / "docs").mkdir()
    (path / "docs" / "guide.md").write_text("# Guide\n")
    commit(path, "init")
    return path


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[MessagesStandIn]:
    with MessagesStandIn() as standin:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", standin.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        yield standin


def bash(command: str) -> Turn:
    return Turn.tool_use("bash", {"command": command})


def script(model: MessagesStandIn, *commands: str) -> None:
    """The agent's plan, then each command, then its last word."""
    model.script([Turn.text(PLAN), *(bash(command) for command in commands), Turn.text("Done.")])


def run(repo: Path, tmp_path: Path) -> RunResult:
    request = LocalRun(
        repo=repo,
        brief=Brief(task="Make the change"),
        max_steps=10,
        max_cost_usd=5.0,
        timeout_seconds=120.0,
        transcript=tmp_path / "transcript.jsonl",
    )

    async def go() -> RunResult:
        model = AnthropicModel("claude-sonnet-4-6", max_retries=0)
        try:
            cache = CheckoutCache(tmp_path / "cache")
            return await run_local(request, model=model, cache=cache)
        finally:
            await model.close()

    return asyncio.run(go())


def cli_run(repo: Path, tmp_path: Path, **env: str) -> tuple[dict[str, Any], str]:
    """`shipmate run --json` as a user runs it: (its JSON, everything it printed)."""
    command = [sys.executable, "-m", "bot.cli", "run", "--repo", str(repo), "--brief", "Go"]
    completed = subprocess.run(
        [*command, "--json"],
        cwd=ROOT,
        env={**os.environ, "SHIPMATE_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    data: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return data, completed.stdout + completed.stderr


def branches(repo: Path) -> list[str]:
    return git(
        "for-each-ref", "--format=%(refname:short)", "refs/heads/shipmate/", cwd=repo
    ).split()


def tree_paths(repo: Path, ref: str) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-tree", "-r", "-z", "--name-only", ref],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout
    return [os.fsdecode(path) for path in listed.split(b"\0") if path]
