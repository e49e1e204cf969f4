"""Secrets and prompt injection end to end: the checkout scan, redaction of every tool output by
the values it found, and a hostile issue run through the whole GitHub path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bot.agent.prompts import Brief
from bot.sandbox.checkout import git
from bot.testing.anthropic import MessagesStandIn, Turn
from tests.test_agent import PLAN, _last_tool_result, _run, model

__all__ = ["model"]

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

AWS_ID = "AKIA" + "Q3EXAMPLEZ7R2NM4KW"[:16]
AWS_SECRET = "Jx7/Kq2+Lm9pRt4vWz8" + "bN3cF6hY1sD5gA0eU2iOq"
GHP = "ghp_" + "Zy9Xw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8"
DB_PASSWORD = "Xk9#mQ2$vL8pWz4!"
DOTENV = (
    f"AWS_ACCESS_KEY_ID={AWS_ID}\nAWS_SECRET_ACCESS_KEY={AWS_SECRET}\n"
    f"GITHUB_TOKEN={GHP}\nDB_PASSWORD={DB_PASSWORD}\nDEBUG=true\n"
)
VALUES = (AWS_ID, AWS_SECRET, GHP, DB_PASSWORD)


def _repo_with_dotenv(tmp_path: Path) -> Path:
    path = tmp_path / "widgets"
    git("init", "-q", "-b", "main", str(path))
    (path / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (path / ".env").write_text(DOTENV)
    git("add", "-A", cwd=path)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init", cwd=path)
    return path


@needs_bwrap
def test_bare_values_printed_from_the_checkout_are_redacted(
    tmp_path: Path, model: MessagesStandIn
) -> None:
    seen: list[str] = []

    def keep(request: dict[str, Any]) -> None:
        seen.append(json.dumps(_last_tool_result(request)["content"]))

    def then(turn: Turn) -> Any:
        def answer(request: dict[str, Any]) -> Turn:
            keep(request)
            return turn

        return answer

    model.script(
        [
            Turn.text(PLAN),
            Turn.tool_use("bash", {"command": "cut -d= -f2 .env"}),
            then(Turn.tool_use("str_replace_based_edit_tool", {"command": "view", "path": ".env"})),
            then(Turn.tool_use("bash", {"command": "base64 -w0 .env; echo; rev .env"})),
            then(Turn.text("Nothing to change.")),
        ]
    )
    repo = _repo_with_dotenv(tmp_path)
    result = _run(repo, tmp_path, brief=Brief(task="Look at the configuration"))
    assert result.status == "completed", result.reason
    assert len(seen) == 3 and "true" in seen[0]  # the commands ran and printed the file
    for text in seen:
        assert not any(value in text for value in VALUES)
    assert "[REDACTED" in seen[0]
    sent = json.dumps(model.requests)
    assert not any(value in sent for value in VALUES)
    transcript = (tmp_path / "transcript.jsonl").read_text()
    assert not any(value in transcript for value in VALUES)
    records = [json.loads(line) for line in transcript.splitlines()]
    scans = [r for r in records if r["kind"] == "checkout_scan"]
    assert len(scans) == 1
    assert {(f["path"], f["line"], f["rule"]) for f in scans[0]["findings"]} == {
        (".env", 1, "aws-access-key-id"),
        (".env", 2, "aws-secret-access-key"),
        (".env", 3, "github-token"),
        (".env", 4, "env-assignment"),
    }
