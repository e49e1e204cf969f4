"""A recording fake of `RepoClient` and a `Context` that hands it out (bedevere's ~20-line fake
client): a handler test says what GitHub answers and checks what the handler asked for."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from bot.config import Settings
from bot.db.store import Store
from bot.jobs.sql import SQLQueue
from bot.triggers.context import Context
from tests.conftest import WEBHOOK_FIXTURES
from tests.dbs import migrate_all

# What RepoClient's calls answer when a test says nothing: no file, nobody, no comment.
DEFAULTS: dict[str, Any] = {
    "permission": "write",
    "comment": 1001,
    "file_text": None,
    "default_branch": "main",
    "pull": None,
    "pull_data": None,
    "comments": [],
    "review_comments": [],
    "open_pulls_for_branch": [],
    "open_pulls_headed": [],
    "pulls_for_commit": [],
    "suite_check_runs": [],
    "workflow_jobs": [],
    "job_log": None,
    "workflow_runs": [],
    "attempt_jobs": [],
    "pull_files": [],
}


class FakeRepo:
    """Every call is recorded as (name, args, kwargs); answers come from `answers` (a value, or
    a function of the call's arguments), else DEFAULTS, else None."""

    def __init__(self, full_name: str = "octo/widgets", **answers: Any) -> None:
        self.full_name = full_name
        self.answers = {**DEFAULTS, **answers}
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            answer = self.answers.get(name)
            return answer(*args, **kwargs) if callable(answer) else answer

        return call

    def called(self, name: str) -> list[tuple[Any, ...]]:
        return [args for call, args, _ in self.calls if call == name]


class FakeContext(Context):
    """A Context whose repository client is the fake; so is its narrowed one (`repo_with`),
    whose permissions are recorded as a call."""

    fake: FakeRepo

    async def repo(self) -> Any:
        return self.fake

    async def repo_with(self, permissions: Mapping[str, str]) -> Any:
        self.fake.calls.append(("repo_with", (dict(permissions),), {}))
        return self.fake


def store_at(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'shipmate.db'}")
    migrate_all(store)
    return store


def recorded(event: str, name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((WEBHOOK_FIXTURES / event / name).read_text())
    return payload


def context_for(
    store: Store,
    event: str,
    payload: dict[str, Any],
    repo: FakeRepo,
    *,
    delivery_id: str = "delivery-1",
    attempt: int = 1,
    **settings: Any,
) -> FakeContext:
    context = FakeContext(
        event=event,
        action=payload.get("action"),
        delivery_id=delivery_id,
        payload=payload,
        installation_id=77,
        repository=repo.full_name,
        log=structlog.get_logger(),
        settings=Settings.load(app_slug="shipmate", **settings),
        store=store,
        queue=SQLQueue(store),
        attempt=attempt,
    )
    context.fake = repo
    return context


def queued_runs(store: Store) -> list[dict[str, Any]]:
    queue = SQLQueue(store)
    with queue.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT kind, payload FROM jobs ORDER BY id").fetchall()
    return [json.loads(p) if isinstance(p, str) else dict(p) for kind, p in rows if kind == "run"]
