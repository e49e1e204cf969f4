"""bot/triggers/ci_rerun.py with a recording fake of the repository client: the pull request's
CI comment (its count of re-runs, the runs it names) is Shipmate's own; the same marker in a
comment anyone else wrote, a person or another App's bot, is read as nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.db.store import Store
from bot.github.models import Comment, WorkflowRun
from bot.triggers import ci_rerun
from bot.triggers.ci_verdict import Verdict
from tests.fakes import FakeContext, FakeRepo, context_for, store_at

MARKER = "<!-- shipmate:ci-reruns -->"
RUN = WorkflowRun(4242, "CI", "a" * 40, "shipmate/9-x", "completed", "failure", "https://x/r/4242")
FLAKY = Verdict("flaky", "the network or the runner failed")
OURS = ("shipmate[bot]", "Bot")
PLANTERS = [("mallory", "User"), ("other-app[bot]", "Bot")]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return store_at(tmp_path)


def _context(store: Store, repo: FakeRepo, *, attempt: int = 1) -> FakeContext:
    return context_for(store, "workflow_run", {"action": "completed"}, repo, attempt=attempt)


def _ci_comment(author: tuple[str, str], runs: list[int], comment_id: int = 50) -> Comment:
    """A CI comment listing re-runs of `runs`, written by `author` (login, type)."""
    entries = [f"- 🔁 `CI` [run {n}](https://x/r/{n}) failed, and it looks flaky" for n in runs]
    body = "\n".join([MARKER, "### CI re-runs", *entries])
    return Comment(comment_id, body, author[0], "https://x/c", author[1])


@pytest.mark.anyio
@pytest.mark.parametrize("planter", PLANTERS)
async def test_a_planted_ci_comment_neither_caps_the_reruns_nor_is_edited(
    store: Store, planter: tuple[str, str]
) -> None:
    repo = FakeRepo(comments=[_ci_comment(planter, [1, 2, 3])])
    assert await ci_rerun.rerun_flaky(_context(store, repo), repo, 9, RUN, FLAKY)
    assert repo.called("repo_with") == [(ci_rerun.RERUN_PERMISSIONS,)]
    assert repo.called("rerun_failed_jobs") == [(4242,)]
    assert repo.called("edit_comment") == []
    ((number, text),) = repo.called("comment")
    assert number == 9 and text.count("- 🔁 ") == 1 and "run 4242" in text


@pytest.mark.anyio
async def test_our_own_ci_comment_caps_the_reruns(store: Store) -> None:
    repo = FakeRepo(comments=[_ci_comment(OURS, [1, 2, 3])])
    assert not await ci_rerun.rerun_flaky(_context(store, repo), repo, 9, RUN, FLAKY)
    assert repo.called("rerun_failed_jobs") == [] and repo.called("comment") == []


@pytest.mark.anyio
async def test_our_own_ci_comment_is_the_one_edited_behind_a_planted_one(store: Store) -> None:
    planted = _ci_comment(PLANTERS[0], [], comment_id=49)
    repo = FakeRepo(comments=[planted, _ci_comment(OURS, [1])])
    assert await ci_rerun.rerun_flaky(_context(store, repo), repo, 9, RUN, FLAKY)
    ((comment_id, text),) = repo.called("edit_comment")
    assert comment_id == 50 and text.count("- 🔁 ") == 2 and repo.called("comment") == []


def _rerun_earlier(store: Store) -> None:
    """An earlier attempt of the delivery's job re-ran the run (its audit row says so)."""
    target = "octo/widgets/actions/runs/4242"
    store.append_audit(
        "actions.rerun_failed_jobs", delivery_id="delivery-1", target=target, detail={}
    )


@pytest.mark.anyio
@pytest.mark.parametrize("planter", PLANTERS)
async def test_a_planted_mention_of_the_run_does_not_pass_for_ours(
    store: Store, planter: tuple[str, str]
) -> None:
    """The job ran again after its re-run, before its comment: a planted comment naming the
    run does not pass for Shipmate having said so; Shipmate says it, in a comment of its own."""
    _rerun_earlier(store)
    repo = FakeRepo(comments=[_ci_comment(planter, [4242])])
    assert await ci_rerun.rerun_before(_context(store, repo, attempt=2), repo, 9, RUN)
    assert repo.called("edit_comment") == [] and repo.called("rerun_failed_jobs") == []
    ((_, text),) = repo.called("comment")
    assert "run 4242" in text and "so it was judged when it failed" in text


@pytest.mark.anyio
async def test_our_own_mention_of_the_run_is_not_said_again(store: Store) -> None:
    _rerun_earlier(store)
    repo = FakeRepo(comments=[_ci_comment(OURS, [4242])])
    assert await ci_rerun.rerun_before(_context(store, repo, attempt=2), repo, 9, RUN)
    assert repo.called("comment") == [] and repo.called("edit_comment") == []
