"""handlers/deployments.py with a recording fake of the repository client: a failed deploy of a
merged Shipmate pull request becomes a follow-up fix from what was deployed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.db.store import Store
from handlers import deployments
from tests.fakes import FakeRepo, context_for, queued_runs, recorded, store_at
from tests.test_handlers_reviews import shipmate_pull

DEPLOYED = "de" * 20


def _deploy(state: str, *, log_url: str | None = None) -> dict[str, Any]:
    payload = recorded("deployment_status", "payload.json")
    payload["deployment_status"].update(
        state=state, description="health check failed", log_url=log_url, target_url=None
    )
    payload["deployment"].update(ref="main", sha=DEPLOYED, environment="production")
    return payload


def _merged() -> dict[str, Any]:
    return {**shipmate_pull(), "state": "closed", "merged_at": "2026-12-01T10:00:00Z"}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return store_at(tmp_path)


@pytest.mark.anyio
async def test_a_failed_deploy_of_our_merged_change_queues_a_follow_up(store: Store) -> None:
    repo = FakeRepo(pull_data=shipmate_pull(), pulls_for_commit=[_merged()])
    await deployments.router.dispatch(
        context_for(store, "deployment_status", _deploy("failure"), repo)
    )
    assert repo.called("pulls_for_commit") == [(DEPLOYED,)]
    (run,) = queued_runs(store)
    assert run["verb"] == "fix" and run["number"] == 9 and "pr" not in run
    assert run["base_sha"] == DEPLOYED  # from what was deployed, not the PR's old head
    assert run["title"] == "Fix the failed production deploy of #9"
    assert run["feedback"].startswith("health check failed")
    assert run["feedback_label"] == "deploy log (production)"


@pytest.mark.anyio
async def test_successes_and_other_peoples_deploys_are_ignored(store: Store) -> None:
    ours = FakeRepo(pulls_for_commit=[_merged()])
    await deployments.router.dispatch(
        context_for(store, "deployment_status", _deploy("success"), ours)
    )
    assert ours.calls == []
    theirs = FakeRepo(pulls_for_commit=[{**_merged(), "user": {"login": "bob"}}])
    await deployments.router.dispatch(
        context_for(store, "deployment_status", _deploy("failure"), theirs)
    )
    assert queued_runs(store) == []


@pytest.mark.anyio
async def test_the_log_is_fetched_only_from_hosts_the_repository_lists(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default config lists no deploy-log host: the log URL (here a cloud metadata address)
    is not fetched, and the run gets the description alone. A listed host is asked."""
    fetched: list[str] = []

    async def fetch(url: str, hosts: list[str]) -> str:
        fetched.append(url)
        return "Traceback: KeyError 'DATABASE_URL'"

    monkeypatch.setattr(deployments, "fetch_log", fetch)
    repo = FakeRepo(pull_data=shipmate_pull(), pulls_for_commit=[_merged()])
    payload = _deploy("error", log_url="http://169.254.169.254/latest/meta-data/")
    await deployments.router.dispatch(context_for(store, "deployment_status", payload, repo))
    (run,) = queued_runs(store)
    assert fetched == [] and run["feedback"].strip() == "health check failed"

    listed = FakeRepo(
        pull_data=shipmate_pull(),
        pulls_for_commit=[_merged()],
        file_text="deploy_log_hosts: [deploy.example.com]\n",
    )
    payload = _deploy("error", log_url="https://deploy.example.com/logs/1")
    (tmp_path / "listed").mkdir()
    other = store_at(tmp_path / "listed")
    await deployments.router.dispatch(context_for(other, "deployment_status", payload, listed))
    assert fetched == ["https://deploy.example.com/logs/1"]
    (run,) = queued_runs(other)
    assert "KeyError 'DATABASE_URL'" in run["feedback"]
