"""bot/runs/repairs.py with a recording fake of the repository client: past its caps, a failure
gets one "a human is needed" comment, said once by Shipmate's own marked comment; the same
marker in a comment anyone else wrote, a person or another App's bot, silences nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.db.store import Store
from bot.github.models import Comment
from bot.runs.repairs import capped_marker, within_caps
from tests.fakes import FakeContext, FakeRepo, context_for, store_at

MARK = "lint:abc123"
HUMAN = "A human needs to take it from here."


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return store_at(tmp_path)


def _capped(store: Store, repo: FakeRepo) -> FakeContext:
    """A context for PR 9 of `repo` whose failure `MARK` used up its attempts (3, the default)."""
    context = context_for(store, "check_run", {"action": "completed"}, repo)
    for delivery in ("d-1", "d-2", "d-3"):
        store.bump_repair_attempt(repo.full_name, 9, MARK, delivery_id=delivery)
    return context


def _said(login: str, kind: str) -> Comment:
    body = f"{capped_marker(MARK)}\nI've tried to fix `lint`. {HUMAN}"
    return Comment(70, body, login, "https://x/c", kind)


@pytest.mark.anyio
@pytest.mark.parametrize(("login", "kind"), [("mallory", "User"), ("other-app[bot]", "Bot")])
async def test_a_planted_capped_marker_does_not_silence_the_human_needed(
    store: Store, login: str, kind: str
) -> None:
    repo = FakeRepo(comments=[_said(login, kind)])
    assert not await within_caps(_capped(store, repo), repo, 9, check="lint", mark=MARK)
    ((number, text),) = repo.called("comment")
    assert number == 9 and text.startswith(capped_marker(MARK)) and HUMAN in text


@pytest.mark.anyio
async def test_our_own_capped_marker_says_it_once(store: Store) -> None:
    repo = FakeRepo(comments=[_said("shipmate[bot]", "Bot")])
    assert not await within_caps(_capped(store, repo), repo, 9, check="lint", mark=MARK)
    assert repo.called("comment") == []


@pytest.mark.anyio
async def test_within_its_caps_a_failure_says_nothing(store: Store) -> None:
    repo = FakeRepo()
    context = context_for(store, "check_run", {"action": "completed"}, repo)
    assert await within_caps(context, repo, 9, check="lint", mark=MARK)
    assert repo.called("comment") == []
