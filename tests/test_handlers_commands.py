"""handlers/commands.py with a recording fake of the repository client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.db.store import Store
from bot.github.models import PullRequest
from handlers import commands
from tests.fakes import FakeRepo, context_for, queued_runs, recorded, store_at


def _comment(
    body: str, *, login: str = "alice", kind: str = "User", on_pull: bool = False
) -> dict[str, Any]:
    payload = recorded("issue_comment", "created.payload.json")
    payload["comment"]["body"] = body
    payload["sender"] = {"login": login, "type": kind}
    payload["issue"]["number"] = 5
    payload["issue"].pop("pull_request", None)
    if on_pull:
        payload["issue"]["pull_request"] = {
            "url": "https://api.github.com/repos/octo/widgets/pulls/5"
        }
    return payload


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return store_at(tmp_path)


@pytest.mark.anyio
async def test_a_writers_fix_is_seen_and_queued(store: Store) -> None:
    repo = FakeRepo()
    payload = _comment("/shipmate fix carefully")
    await commands.router.dispatch(context_for(store, "issue_comment", payload, repo))
    assert repo.called("react_eyes") == [(payload["comment"]["id"],)]
    assert repo.called("permission") == [("alice",)]
    assert "shipmate:task:octo-widgets-5" in repo.called("comment")[0][1]  # the sticky comment
    (run,) = queued_runs(store)
    assert run["repo"] == "octo/widgets" and run["number"] == 5 and run["verb"] == "fix"
    assert run["notes"] == "carefully" and run["actor"] == "alice"
    assert run["installation_id"] == 77 and run["sticky_comment_id"] == 1001


@pytest.mark.anyio
async def test_someone_without_write_access_is_refused_once(store: Store) -> None:
    # Two comments, two deliveries: the second is not answered again. (One delivery run twice,
    # a retry, posts again under its reply key, which GitHub-side keeps to one: test_replies.py.)
    repo = FakeRepo(permission="read")
    for n in (1, 2):
        payload = _comment("/shipmate fix", login="mallory")
        await commands.router.dispatch(
            context_for(store, "issue_comment", payload, repo, delivery_id=f"delivery-{n}")
        )
    refusals = [body for number, body in repo.called("comment") if "write access" in body]
    assert len(refusals) == 1 and queued_runs(store) == []


@pytest.mark.anyio
async def test_bots_and_comments_without_a_command_are_ignored(store: Store) -> None:
    repo = FakeRepo()
    for payload in (
        _comment("/shipmate fix", login="other[bot]", kind="Bot"),
        _comment("> /shipmate fix\nquoted, so not a command"),
        _comment("thanks!"),
    ):
        await commands.router.dispatch(context_for(store, "issue_comment", payload, repo))
    assert repo.calls == [] and queued_runs(store) == []


@pytest.mark.anyio
async def test_a_fix_on_a_fork_pull_request_starts_from_its_head_without_secrets(
    store: Store,
) -> None:
    head = "c0ffee" + "0" * 34
    pull = PullRequest(5, "open", False, "feature", head, "mallory/widgets", "main", "https://x")
    repo = FakeRepo(pull=pull)
    payload = _comment("/shipmate fix", on_pull=True)
    await commands.router.dispatch(context_for(store, "issue_comment", payload, repo))
    (run,) = queued_runs(store)
    assert run["base_sha"] == head and run["fork"] is True
    assert run["task"].startswith("Make the smallest change on top of pull request #5")


@pytest.mark.anyio
async def test_a_stop_anywhere_wins(store: Store) -> None:
    repo = FakeRepo()
    payload = _comment("/shipmate fix\n/shipmate stop")
    await commands.router.dispatch(context_for(store, "issue_comment", payload, repo))
    assert queued_runs(store) == []
    assert repo.called("comment") == [(5, "Nothing is running here.")]


@pytest.mark.anyio
async def test_an_unknown_verb_gets_the_help(store: Store) -> None:
    repo = FakeRepo()
    await commands.router.dispatch(
        context_for(store, "issue_comment", _comment("/shipmate dance"), repo)
    )
    ((number, body),) = repo.called("comment")
    assert number == 5 and body.startswith("I don't know `/shipmate dance`.")
    assert "/shipmate fix" in body and queued_runs(store) == []


def _held_run(store: Store, run_id: str = "abc123def456", kind: str = "fix") -> None:
    """A run on issue 5 that held its change back for its size, as the run job records it."""
    store.record_run(run_id, repo="octo/widgets", number=5, kind=kind, base_sha="a" * 40)
    task = {"task": "Split it", "notes": "gently"}
    store.append_audit("run.start", run_id=run_id, detail={"verb": kind, "task": task})
    store.update_run(run_id, status="held")


@pytest.mark.anyio
async def test_apply_large_publishes_the_held_change_without_the_agent(store: Store) -> None:
    _held_run(store)
    repo = FakeRepo()
    payload = _comment("/shipmate apply --large")
    await commands.router.dispatch(context_for(store, "issue_comment", payload, repo))
    assert repo.called("permission") == [("alice",)]
    (run,) = queued_runs(store)
    assert run["publish"] == "abc123def456" and run["verb"] == "fix"
    assert run["task"] == "Split it" and run["notes"] == "gently" and run["actor"] == "alice"


@pytest.mark.anyio
async def test_apply_on_a_held_change_says_large_is_needed(store: Store) -> None:
    _held_run(store)
    store.update_run("abc123def456", plan="1. Split it.")
    repo = FakeRepo()
    await commands.router.dispatch(
        context_for(store, "issue_comment", _comment("/shipmate apply"), repo)
    )
    ((_, body),) = repo.called("comment")
    assert "scope budget" in body and "`/shipmate apply --large`" in body
    assert queued_runs(store) == []


@pytest.mark.anyio
async def test_apply_large_with_nothing_held_says_so(store: Store) -> None:
    store.record_run("fedcba654321", repo="octo/widgets", number=5, kind="plan", plan="1. Do.")
    store.update_run("fedcba654321", status="completed")
    repo = FakeRepo()
    await commands.router.dispatch(
        context_for(store, "issue_comment", _comment("/shipmate apply --large"), repo)
    )
    ((_, body),) = repo.called("comment")
    assert body.startswith("Nothing is held back here") and queued_runs(store) == []


@pytest.mark.anyio
async def test_apply_large_needs_write_access(store: Store) -> None:
    _held_run(store)
    repo = FakeRepo(permission="read")
    payload = _comment("/shipmate apply --large", login="mallory")
    await commands.router.dispatch(context_for(store, "issue_comment", payload, repo))
    ((_, body),) = repo.called("comment")
    assert "only people with write access" in body and queued_runs(store) == []


@pytest.mark.anyio
async def test_large_goes_with_apply_only(store: Store) -> None:
    repo = FakeRepo()
    await commands.router.dispatch(
        context_for(store, "issue_comment", _comment("/shipmate fix --large all of it"), repo)
    )
    ((_, body),) = repo.called("comment")
    assert body.startswith("`/shipmate fix` takes no `--large`") and queued_runs(store) == []


def _open_pull(author: str = "shipmate[bot]") -> dict[str, Any]:
    return {
        "number": 6,
        "state": "open",
        "html_url": "https://github.com/octo/widgets/pull/6",
        "user": {"login": author},
        "head": {"ref": "shipmate/5-add-subtracts-0a1b2c", "sha": "d" * 40},
    }


@pytest.mark.anyio
async def test_a_second_fix_answers_with_the_open_pull_request(store: Store) -> None:
    repo = FakeRepo(open_pulls_headed=[_open_pull()])
    await commands.router.dispatch(
        context_for(store, "issue_comment", _comment("/shipmate fix"), repo)
    )
    assert repo.called("open_pulls_headed") == [("shipmate/5-",)]
    ((number, body),) = repo.called("comment")
    assert number == 5 and body.startswith(
        "There is already a pull request for this: https://github.com/octo/widgets/pull/6."
    )
    assert queued_runs(store) == []


@pytest.mark.anyio
async def test_a_second_fix_with_more_to_say_changes_the_open_pull_request(store: Store) -> None:
    repo = FakeRepo(open_pulls_headed=[_open_pull()])
    payload = _comment("/shipmate fix and keep the old name as an alias")
    await commands.router.dispatch(context_for(store, "issue_comment", payload, repo))
    (run,) = queued_runs(store)
    assert run["number"] == 5 and run["verb"] == "fix"
    assert run["pr"] == {
        "number": 6,
        "head_ref": "shipmate/5-add-subtracts-0a1b2c",
        "head_sha": "d" * 40,
        "reply_to": [],
    }
    assert run["feedback"] == "and keep the old name as an alias"
    assert run["task"].startswith("Change pull request #6, which resolves issue #5")


@pytest.mark.anyio
async def test_someone_elses_pull_request_from_a_shipmate_branch_is_not_ours(store: Store) -> None:
    repo = FakeRepo(open_pulls_headed=[_open_pull(author="mallory")])
    await commands.router.dispatch(
        context_for(store, "issue_comment", _comment("/shipmate fix"), repo)
    )
    (run,) = queued_runs(store)
    assert "pr" not in run  # a new pull request of our own
