"""Shipmate's own processes for tests (`python -m bot.cli serve|worker|migrate`) on one database
and the GitHub stand-in: the world they share, their settings, starting them, waiting on them,
stopping them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine

from bot.github.auth import PUSH
from standins.github import GitHubStandIn
from standins.github_common import App, Installation
from tests.dbs import postgres_schema

REPO = "octo/widgets"
# The repositories an installation event adds: each gets a config check run.
CHECKED = ("octo/config-a", "octo/config-b")


@contextmanager
def world(root: Path) -> Iterator[tuple[str, GitHubStandIn, App, Installation]]:
    """A fresh PostgreSQL schema (its URL) and the GitHub stand-in, where the App "shipmate" is
    installed on REPO (alice may write there) and on CHECKED."""
    with postgres_schema() as url, GitHubStandIn(root / "gh") as gh:
        app = gh.create_app("shipmate")
        for name in (REPO, *CHECKED):
            gh.create_repo(name, {"README.md": "hello\n"})
        installation = gh.install(app, "octo", [REPO, *CHECKED], dict(PUSH))
        gh.add_collaborator(REPO, "alice", "write")
        yield url, gh, app, installation


class Database:
    """The database the processes share, as a test reads it."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def scalar(self, query: str) -> Any:
        with self.engine.connect() as conn:
            return conn.exec_driver_sql(query).scalar()

    def rows(self, query: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.exec_driver_sql(query))


def checked_added(installation_id: int) -> dict[str, Any]:
    """An `installation_repositories` event's fields: CHECKED were added."""
    return {
        "repositories_added": [{"full_name": n, "name": n.split("/")[1]} for n in CHECKED],
        "repositories_removed": [],
        "installation": {"id": installation_id, "account": {"login": "octo"}},
    }


def shipmate_env(database_url: str, github_url: str, app: App, secret: str) -> dict[str, str]:
    """This process's environment without its SHIPMATE_* settings, and Shipmate's for
    `database_url`, the stand-in at `github_url` as `app`, signed with `secret`; workers beat
    each second and are taken for dead after 5 s of silence."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHIPMATE_")},
        "SHIPMATE_DATABASE_URL": database_url,
        "SHIPMATE_APP_ID": str(app.id),
        "SHIPMATE_APP_SLUG": app.slug,
        "SHIPMATE_PRIVATE_KEY": app.private_key_pem,
        "SHIPMATE_GITHUB_API_URL": github_url,
        "SHIPMATE_WEBHOOK_SECRET": secret,
        "ANTHROPIC_API_KEY": "unused: no task here calls the model",  # workers need one
        "SHIPMATE_LOG_LEVEL": os.environ.get("SHIPMATE_TEST_LOG_LEVEL", "warning"),
        "SHIPMATE_WORKER_HEARTBEAT_SECONDS": "1",
        "SHIPMATE_WORKER_STALLED_SECONDS": "5",
    }


def migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "migrate"], env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`shipmate ARGS`, its output into `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_until(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.1)


def healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
