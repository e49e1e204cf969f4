"""The demo's world: the GitHub and model stand-ins, Shipmate's real server with its in-process
worker on a free loopback port, everything under one temporary folder, all closed by `close`."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bot.config import Settings
from bot.db.store import Store
from bot.demo import script
from bot.jobs.sql import SQLQueue
from standins.anthropic import MessagesStandIn, Turn
from standins.github import DEMO_PERMISSIONS, GitHubStandIn
from standins.server import free_port

SENDER_BOT = {"login": "github-actions[bot]", "type": "Bot"}
UNFINISHED = ("waiting", "running")


@dataclass
class Shipmate:
    """Shipmate's server (`serve`'s app and worker) in a thread of this process."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str
    store: Store

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def start_shipmate(settings: Settings) -> Shipmate:
    """`shipmate serve` as it runs in production (one process, worker in the lifespan)."""
    from bot.app import web_app

    app, store = web_app(settings, with_worker=True)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="on", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="shipmate-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"Shipmate did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    return Shipmate(server, thread, f"http://127.0.0.1:{port}", store)


class World:
    """What the steps act on: the stand-ins' state and Shipmate's webhook address."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.secret = secrets.token_hex(16)
        self.admin_token = secrets.token_urlsafe(24)
        self._stack = contextlib.ExitStack()
        first_id = 10**6 * (1 + secrets.randbelow(1000))
        self.gh = self._stack.enter_context(GitHubStandIn(root / "github", first_id=first_id))
        self.model = self._stack.enter_context(MessagesStandIn())
        self.installation_id = self._install()
        self.settings = self._settings()
        from bot.logs import configure, settings_secrets

        # Shipmate's own log lines go to stderr; at "warning" the steps' lines stay readable.
        configure("console", self.settings.log_level, known=settings_secrets(self.settings))
        self.shipmate = start_shipmate(self.settings)
        self.queue = SQLQueue(self.shipmate.store)

    def _install(self) -> int:
        self.app = self.gh.create_app("shipmate")
        self.gh.create_repo(script.REPO, dict(script.FILES))
        installation = self.gh.install(self.app, "octo", [script.REPO], dict(DEMO_PERMISSIONS))
        self.gh.add_collaborator(script.REPO, "alice", "maintain")
        return installation.id

    def _settings(self) -> Settings:
        # The model stand-in takes the SDK's own settings; the dashboard takes the token.
        os.environ["ANTHROPIC_BASE_URL"] = self.model.url
        os.environ["ANTHROPIC_API_KEY"] = "demo-key"
        os.environ["SHIPMATE_ADMIN_TOKEN"] = self.admin_token
        return Settings.load(
            app_id=self.app.id,
            app_slug="shipmate",
            private_key=self.app.private_key_pem,
            github_api_url=self.gh.url,
            webhook_secret=self.secret,
            data_dir=self.root / "data",
            database_url=None,
            log_format="console",
            log_level=os.environ.get("SHIPMATE_DEMO_LOG_LEVEL", "warning"),
        )

    @property
    def webhook_url(self) -> str:
        return f"{self.shipmate.url}/api/github/webhooks"

    def emit(self, event: str, action: str | None, overrides: dict[str, Any]) -> None:
        """A signed delivery, as GitHub sends it, to Shipmate; raises unless it was accepted."""
        owner, name = script.REPO.split("/")
        payload = {
            "repository": {
                "full_name": script.REPO,
                "name": name,
                "owner": {"login": owner},
                "default_branch": "main",
            },
            "installation": {"id": self.installation_id},
            **overrides,
        }
        response = self.gh.emit(event, action, payload, to=self.webhook_url, secret=self.secret)
        if response.status_code != 202:
            raise RuntimeError(f"Shipmate answered {response.status_code} to {event}")

    def settle(self, timeout: float = 300.0) -> None:
        """Wait until the queue has nothing waiting or running (the step's jobs are done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = self.queue.counts()
            if not any(counts.get(state) for state in UNFINISHED):
                return
            time.sleep(0.2)
        raise TimeoutError(f"Shipmate's queue did not empty within {timeout:.0f}s")

    def script(self, turns: list[Turn]) -> None:
        self.model.script(turns)

    def answer_forever(self, text: str) -> None:
        """For `--keep`: every later model call gets the same short answer."""
        answer = Turn.text(text)
        self.model.script([lambda _request: answer] * 10_000)

    def reachable(self) -> bool:
        return httpx.get(f"{self.shipmate.url}/", timeout=5).status_code < 500

    def close(self) -> None:
        self.shipmate.stop()
        self._stack.close()
