"""The typed events handlers read: every recorded payload of an event a handler takes fits its
model (githubkit's models refuse 38 of the 129); one lacking what a handler reads is refused by
name, and its delivery fails once instead of being retried."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from bot.config import Settings
from bot.db.deliveries import Delivery
from bot.db.store import Store
from bot.jobs.worker import Worker
from bot.triggers import events
from bot.triggers.delivery import DeliveryJob
from handlers import router
from tests.conftest import WEBHOOK_FIXTURES
from tests.dbs import migrate_all

# Event (and action, for those whose other actions carry other shapes) -> model.
MODELS: dict[tuple[str, str | None], type[BaseModel]] = {
    ("issue_comment", "created"): events.IssueComment,
    ("issues", "labeled"): events.IssueLabel,
    ("issues", "unlabeled"): events.IssueLabel,
    ("pull_request_review", "submitted"): events.PullRequestReview,
    ("check_run", None): events.CheckRun,
    ("check_suite", None): events.CheckSuite,
    ("workflow_run", None): events.WorkflowRun,
    ("status", None): events.Status,
    ("deployment_status", None): events.DeploymentStatus,
    ("installation", None): events.Installation,
    ("installation_repositories", None): events.InstallationRepositories,
    ("ping", None): events.Ping,
}


def _recorded() -> list[tuple[Path, type[BaseModel]]]:
    found = []
    for path in sorted(WEBHOOK_FIXTURES.glob("*/*.json")):
        action = json.loads(path.read_text()).get("action")
        model = MODELS.get((path.parent.name, action)) or MODELS.get((path.parent.name, None))
        if model is not None:
            found.append((path, model))
    return found


def test_every_recorded_payload_of_a_handled_event_fits_its_model() -> None:
    cases = _recorded()
    assert len(cases) >= 40  # the fixtures are there
    for path, model in cases:
        model.model_validate_json(path.read_bytes())


def test_a_payload_without_what_a_handler_reads_is_refused_by_name() -> None:
    payload = json.loads((WEBHOOK_FIXTURES / "issue_comment" / "created.payload.json").read_text())
    del payload["comment"]["id"]
    with pytest.raises(ValidationError, match=r"comment\.id"):
        events.IssueComment.model_validate(payload)
    payload["comment"]["id"] = "12; drop"
    with pytest.raises(ValidationError):
        events.IssueComment.model_validate(payload)


@pytest.mark.anyio
async def test_such_a_delivery_fails_once_not_five_times(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", job_max_attempts=5)
    queue = migrate_all(store)
    payload = json.loads((WEBHOOK_FIXTURES / "issue_comment" / "created.payload.json").read_text())
    payload["comment"] = {"body": "/shipmate fix"}  # no id
    delivery = Delivery("d-bad", "issue_comment", "created", json.dumps(payload).encode(), True)
    queue.enqueue_deliveries([delivery])
    handler = DeliveryJob(Settings.load(), store, queue, router, clients=None)
    assert await Worker(queue, {"webhook": handler}).run_until_idle() == 1
    (dead,) = queue.dead_letters()
    assert dead.attempts == 1
    error = queue.get(dead.id)["last_error"]  # type: ignore[index]
    assert error.startswith("JobRejected: issue_comment payload") and "comment.id" in error
    stored = store.get_delivery("d-bad")
    assert stored is not None and stored.status == "failed"
