"""handlers/reviews.py with a recording fake of the repository client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.db.store import Store
from bot.github.models import ReviewComment
from handlers import reviews
from tests.fakes import FakeRepo, context_for, queued_runs, recorded, store_at

HEAD = "ab" * 20


def shipmate_pull(
    number: int = 9, login: str = "shipmate[bot]", ref: str = "shipmate/9-x"
) -> dict[str, Any]:
    return {
        "number": number,
        "state": "open",
        "user": {"login": login},
        "head": {"ref": ref, "sha": HEAD},
    }


def _review(state: str, *, login: str = "alice", kind: str = "User") -> dict[str, Any]:
    payload = recorded("pull_request_review", "submitted.payload.json")
    payload["review"].update(state=state, id=555, body="Please rename it.")
    payload["pull_request"]["number"] = 9
    payload["sender"] = {"login": login, "type": kind}
    return payload


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return store_at(tmp_path)


@pytest.mark.anyio
async def test_changes_requested_on_our_pull_request_queue_one_revision(store: Store) -> None:
    comments = [
        ReviewComment(71, "calc.py", 3, "name it add", "alice", None),
        ReviewComment(72, "calc.py", 9, "and test it", "alice", None),
    ]
    repo = FakeRepo(pull_data=shipmate_pull(), review_comments=comments)
    await reviews.router.dispatch(
        context_for(store, "pull_request_review", _review("changes_requested"), repo)
    )
    assert repo.called("review_comments") == [(9, 555)]
    (run,) = queued_runs(store)
    assert run["verb"] == "revise"
    assert run["pr"] == {
        "number": 9,
        "head_ref": "shipmate/9-x",
        "head_sha": HEAD,
        "reply_to": [71, 72],
    }
    assert run["feedback"] == (
        "Review by alice: Please rename it.\n- calc.py:3: name it add\n- calc.py:9: and test it"
    )
    assert run["feedback_label"] == "review"


@pytest.mark.anyio
async def test_approvals_bots_and_other_peoples_pull_requests_are_left_alone(store: Store) -> None:
    theirs = FakeRepo(pull_data=shipmate_pull(login="bob"))
    await reviews.router.dispatch(
        context_for(store, "pull_request_review", _review("changes_requested"), theirs)
    )
    branch = FakeRepo(pull_data=shipmate_pull(ref="feature"))
    await reviews.router.dispatch(
        context_for(store, "pull_request_review", _review("commented"), branch)
    )
    ours = FakeRepo(pull_data=shipmate_pull())
    for payload in (_review("approved"), _review("commented", login="ci[bot]", kind="Bot")):
        await reviews.router.dispatch(context_for(store, "pull_request_review", payload, ours))
    assert queued_runs(store) == [] and ours.calls == []


@pytest.mark.anyio
async def test_a_reviewer_without_write_access_is_refused(store: Store) -> None:
    repo = FakeRepo(pull_data=shipmate_pull(), permission="read")
    await reviews.router.dispatch(
        context_for(store, "pull_request_review", _review("changes_requested"), repo)
    )
    assert queued_runs(store) == []
    assert any("write access" in body for _, body in repo.called("comment"))
