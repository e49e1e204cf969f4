"""Driving the stand-ins by hand: `python -m standins.emit` sends a running Shipmate a signed
event of each kind, and `python -m standins.anthropic --script FILE` answers from a file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from bot.config import Settings
from bot.db.store import Store
from bot.intake.app import create_app
from handlers import router
from tests.dbs import migrate_all
from tests.servers import free_port, running

ROOT = Path(__file__).resolve().parent.parent
SECRET = "by-hand-secret"
KINDS = {
    "comment": "issue_comment",
    "label": "issues",
    "review": "pull_request_review",
    "ci-failure": "workflow_run",
    "deploy-failure": "deployment_status",
}


def emit(
    url: str, kind: str, *extra: str, secret: str = SECRET
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "standins.emit", kind, "--to", url, "--secret", secret, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_each_kind_reaches_shipmate_signed(tmp_path: Path) -> None:
    settings = Settings.load(webhook_secret=SECRET, data_dir=tmp_path / "data")
    store = Store.from_settings(settings)
    migrate_all(store)

    with running(create_app(settings, store, router)) as base:
        url = f"{base}/api/github/webhooks"
        for kind, event in KINDS.items():
            done = emit(url, kind, "--installation", "7")
            assert done.returncode == 0, done.stdout + done.stderr
            assert done.stdout.startswith(("202", "200")), done.stdout
        wrong = emit(url, "comment", secret="not-the-secret")
        assert wrong.returncode == 1 and wrong.stdout.startswith("401")
    stored = {store.get_delivery(d).event for d in _ids(store)}  # type: ignore[union-attr]
    assert stored == set(KINDS.values())
    store.dispose()


def _ids(store: Store) -> list[str]:
    from sqlalchemy import select

    from bot.db import schema

    with store.engine.connect() as conn:
        return [r.delivery_id for r in conn.execute(select(schema.deliveries.c.delivery_id))]


def test_the_model_stand_in_answers_from_a_script_file(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            [
                {"text": "1. Look."},
                {"tool": "bash", "input": {"command": "ls"}, "text": "Listing."},
                {"text": "Done."},
            ]
        )
    )
    port = free_port()
    served = subprocess.Popen(
        [sys.executable, "-m", "standins.anthropic", "--port", str(port), "--script", str(script)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert served.stdout is not None
        assert served.stdout.readline().strip() == f"ANTHROPIC_BASE_URL=http://127.0.0.1:{port}"
        answers = []
        messages = [{"role": "user", "content": "hi"}]
        for _ in range(3):
            reply = httpx.post(
                f"http://127.0.0.1:{port}/v1/messages",
                headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
                json={
                    "model": "claude-sonnet-4-6",
                    "max_tokens": 100,
                    "messages": messages,
                    "tools": [{"type": "bash_20250124", "name": "bash"}],
                },
                timeout=30,
            )
            assert reply.status_code == 200, reply.text
            reply = reply.json()
            answers.append([b["type"] for b in reply["content"]])
            messages = [*messages, {"role": "assistant", "content": reply["content"]}]
            used = [b for b in reply["content"] if b["type"] == "tool_use"]
            follow = [{"type": "tool_result", "tool_use_id": b["id"], "content": "x"} for b in used]
            messages.append({"role": "user", "content": follow or "go on"})
        assert answers == [["text"], ["text", "tool_use"], ["text"]]
    finally:
        served.terminate()
        served.wait(10)


def test_a_script_file_that_is_not_a_list_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "bad.json"
    script.write_text('{"text": "x"}')
    done = subprocess.run(
        [sys.executable, "-m", "standins.anthropic", "--script", str(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0 and "JSON list of turns" in done.stderr
