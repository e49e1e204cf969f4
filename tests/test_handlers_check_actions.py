"""handlers/check_actions.py with a recording fake of the repository client: a press of the
`Shipmate` check run's Stop or Retry button is obeyed as the comment would be, with the same
permission check; presses on other check runs, other apps' runs and unknown buttons are left
alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.db.store import Store
from bot.runs.tasks import REFUSAL
from handlers import check_actions
from tests.fakes import FakeRepo, context_for, queued_runs, recorded, store_at

HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def _press(identifier: str, *, name: str = "Shipmate", app: str = "shipmate") -> dict[str, Any]:
    payload = recorded("check_run", "requested_action.payload.json")  # electron's API Review
    run = payload["check_run"]
    run.update(name=name, head_sha=HEAD, app={**run["app"], "slug": app})
    run["pull_requests"] = (
        [{**run["pull_requests"][0], "number": 9}] if run["pull_requests"] else []
    )
    payload["requested_action"] = {"identifier": identifier}
    return payload


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return store_at(tmp_path)


async def _dispatch(
    store: Store, payload: dict[str, Any], repo: FakeRepo, delivery_id: str = "delivery-1"
) -> None:
    context = context_for(store, "check_run", payload, repo, delivery_id=delivery_id)
    await check_actions.router.dispatch(context)


@pytest.mark.anyio
async def test_stop_with_nothing_running_says_so_on_the_pull_request(store: Store) -> None:
    repo = FakeRepo()
    await _dispatch(store, _press("stop"), repo)
    assert repo.called("comment") == [(9, "Nothing is running here.")]


@pytest.mark.anyio
async def test_retry_with_no_run_yet_says_there_is_nothing_to_retry(store: Store) -> None:
    repo = FakeRepo()
    await _dispatch(store, _press("retry"), repo)
    ((number, text),) = repo.called("comment")
    assert number == 9 and "nothing to retry" in text
    assert queued_runs(store) == []


@pytest.mark.anyio
async def test_a_press_by_someone_without_write_access_is_refused_once(store: Store) -> None:
    repo = FakeRepo(permission="read")
    # Two presses are two deliveries; the second is not answered again.
    await _dispatch(store, _press("stop"), repo, "delivery-1")
    await _dispatch(store, _press("retry"), repo, "delivery-2")
    assert repo.called("comment") == [(9, REFUSAL)]
    assert queued_runs(store) == []


@pytest.mark.anyio
async def test_the_pull_request_is_found_by_the_head_commit_when_the_run_names_none(
    store: Store,
) -> None:
    payload = _press("stop")
    payload["check_run"]["pull_requests"] = []
    repo = FakeRepo(pulls_for_commit=[{"number": 12}])
    await _dispatch(store, payload, repo)
    assert repo.called("pulls_for_commit") == [(HEAD,)]
    assert repo.called("comment") == [(12, "Nothing is running here.")]


@pytest.mark.anyio
async def test_other_check_runs_other_apps_and_unknown_buttons_are_ignored(store: Store) -> None:
    repo = FakeRepo()
    for payload in (
        recorded("check_run", "requested_action.payload.json"),  # another app's button
        _press("merge"),
        _press("stop", name="lint"),
        _press("stop", app="circleci"),
    ):
        await _dispatch(store, payload, repo)
    assert repo.calls == []
