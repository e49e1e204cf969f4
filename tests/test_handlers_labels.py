"""handlers/labels.py with a recording fake of the repository client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.db.store import Store
from handlers import labels
from tests.fakes import FakeRepo, context_for, queued_runs, recorded, store_at


def _labeled(action: str, name: str, *, kind: str = "User") -> dict[str, Any]:
    payload = recorded("issues", f"{action}.payload.json")
    payload["label"] = {**payload.get("label", {}), "name": name}
    payload["issue"]["number"] = 3
    payload["sender"] = {"login": "alice", "type": kind}
    return payload


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return store_at(tmp_path)


@pytest.mark.anyio
async def test_the_fix_label_queues_a_fix(store: Store) -> None:
    repo = FakeRepo()
    await labels.router.dispatch(
        context_for(store, "issues", _labeled("labeled", "shipmate:fix"), repo)
    )
    (run,) = queued_runs(store)
    assert (run["number"], run["verb"]) == (3, "fix")
    assert repo.called("permission") == [("alice",)]


@pytest.mark.anyio
async def test_the_label_comes_from_the_repository_config(store: Store) -> None:
    repo = FakeRepo(file_text="label: robot\n")
    await labels.router.dispatch(
        context_for(store, "issues", _labeled("labeled", "shipmate:fix"), repo)
    )
    assert queued_runs(store) == []
    await labels.router.dispatch(context_for(store, "issues", _labeled("labeled", "robot"), repo))
    assert len(queued_runs(store)) == 1


@pytest.mark.anyio
async def test_other_labels_and_bots_do_nothing(store: Store) -> None:
    repo = FakeRepo()
    for payload in (
        _labeled("labeled", "bug"),
        _labeled("labeled", "shipmate:fix", kind="Bot"),
        _labeled("unlabeled", "bug"),
    ):
        await labels.router.dispatch(context_for(store, "issues", payload, repo))
    assert queued_runs(store) == [] and repo.called("comment") == []


@pytest.mark.anyio
async def test_removing_the_label_stops_the_task_and_says_nothing_when_none_runs(
    store: Store,
) -> None:
    repo = FakeRepo()
    await labels.router.dispatch(
        context_for(store, "issues", _labeled("labeled", "shipmate:fix"), repo)
    )
    unlabel = _labeled("unlabeled", "shipmate:fix")
    await labels.router.dispatch(context_for(store, "issues", unlabel, repo))
    assert repo.called("comment")[-1] == (3, "Stopping the task.")
    with store.engine.connect() as conn:
        states = [s for (s,) in conn.exec_driver_sql("SELECT state FROM jobs WHERE kind = 'run'")]
    assert states == ["aborted"]
    before = len(repo.calls)
    await labels.router.dispatch(context_for(store, "issues", unlabel, repo))
    assert [c for c, _, _ in repo.calls[before:] if c == "comment"] == []  # quiet
