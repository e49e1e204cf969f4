from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import structlog

from bot.config import Settings
from bot.db.store import Store
from bot.jobs.sql import SQLQueue
from bot.triggers.context import Context
from handlers import router
from tests.conftest import WEBHOOK_FIXTURES
from tests.dbs import migrate_all


def _context(store: Store, event: str, payload: dict[str, Any]) -> Context:
    return Context(
        event=event,
        action=payload.get("action"),
        delivery_id="d",
        payload=payload,
        installation_id=payload["installation"]["id"],
        repository=None,
        log=structlog.get_logger(),
        settings=Settings.load(),
        store=store,
        queue=SQLQueue(store),
    )


def _fixture(event: str, name: str) -> dict[str, Any]:
    return json.loads((WEBHOOK_FIXTURES / event / name).read_text())


@pytest.mark.anyio
async def test_install_suspend_repositories_and_uninstall(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate_all(store)
    created = _fixture("installation", "created.payload.json")
    installation_id = created["installation"]["id"]
    await router.dispatch(_context(store, "installation", created))
    installed = store.get_installation(installation_id)
    assert installed is not None and not installed.suspended
    assert store.installation_repositories(installation_id) == sorted(
        r["full_name"] for r in created["repositories"]
    )

    suspend = _fixture("installation", "suspend.payload.json")
    suspend["installation"]["id"] = installation_id
    await router.dispatch(_context(store, "installation", suspend))
    assert store.get_installation(installation_id).suspended  # type: ignore[union-attr]

    added = _fixture("installation_repositories", "added.payload.json")
    added["installation"]["id"] = installation_id
    await router.dispatch(_context(store, "installation_repositories", added))
    for repo in added["repositories_added"]:
        assert repo["full_name"] in store.installation_repositories(installation_id)

    removed = _fixture("installation_repositories", "removed.payload.json")
    removed["installation"]["id"] = installation_id
    await router.dispatch(_context(store, "installation_repositories", removed))
    for repo in removed["repositories_removed"]:
        assert repo["full_name"] not in store.installation_repositories(installation_id)

    deleted = _fixture("installation", "deleted.payload.json")
    deleted["installation"]["id"] = installation_id
    await router.dispatch(_context(store, "installation", deleted))
    assert store.get_installation(installation_id) is None
