"""A delivery's job run again after it acted (its worker killed after the comment went out,
before the job was marked done) posts nothing twice and queues no second run: against the
GitHub stand-in, through the real intake, queue, worker and handlers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.app import job_handlers
from bot.config import Settings
from bot.db.store import Store
from bot.github.auth import PUSH
from bot.github.conversation import ConversationCalls
from bot.github.replies import marked, reply_key, unmarked
from bot.intake.app import create_app
from bot.jobs.queue import Job
from bot.jobs.sql import SQLQueue
from bot.jobs.worker import JobContext, JobHandler, Worker
from handlers import router
from standins.github import GitHubStandIn
from tests.dbs import migrate_all
from tests.kills import killed_before_the_audit_row
from tests.servers import running

SECRET = "replies-secret"
REPO = "octo/widgets"
OTHER = "octo/gadgets"


@dataclass
class Thread:
    gh: GitHubStandIn
    settings: Settings
    store: Store
    queue: SQLQueue
    base: str
    installation_id: int

    def command(self, text: str, by: str = "alice") -> str:
        """`by` comments `text` on issue 1; the delivery id Shipmate accepted."""
        made = self.gh.create_comment(REPO, 1, text, by)
        return self.deliver(
            "issue_comment",
            "created",
            {
                "comment": {"id": made["id"], "body": text, "user": {"login": by}},
                "issue": {"number": 1, "title": "add() subtracts", "body": ""},
            },
            sender=by,
        )

    def deliver(
        self, event: str, action: str | None, overrides: dict[str, Any], **fields: Any
    ) -> str:
        """GitHub sends this event (by alice, on REPO unless `fields` say otherwise); the
        delivery id Shipmate accepted."""
        response = self.gh.emit(
            event,
            action,
            overrides,
            to=f"{self.base}/api/github/webhooks",
            secret=SECRET,
            **{"repo": REPO, "sender": "alice", "installation_id": self.installation_id, **fields},
        )
        assert response.status_code == 202
        return str(response.request.headers["X-GitHub-Delivery"])

    def work(self, run: JobHandler | None = None) -> int:
        handlers = job_handlers(self.settings, self.store, self.queue, router=router)
        if run is not None:
            handlers["run"] = run
        return asyncio.run(Worker(self.queue, handlers).run_until_idle())

    def killed_after_it_acted(self, delivery_id: str) -> None:
        """What a worker SIGKILLed after the job's side effects, before it was marked done,
        leaves: the job waits again (its lease ran out) and the delivery is not handled."""
        with self.store.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE jobs SET state = 'waiting', run_at = 0 WHERE kind = 'webhook'"
                " AND json_extract(payload, '$.delivery_id') = ?",
                (delivery_id,),
            )
        self.store.set_delivery_status(delivery_id, "queued")

    def answers(self) -> list[str]:
        return [
            str(c["body"])
            for c in self.gh.state.comments.values()
            if c["user"]["login"] == "shipmate[bot]"
        ]


@pytest.fixture
def thread(tmp_path: Path) -> Iterator[Thread]:
    with GitHubStandIn(tmp_path / "gh") as gh:
        app = gh.create_app("shipmate")
        gh.create_repo(REPO, {"README.md": "hi\n"})
        gh.create_repo(OTHER, {"README.md": "hi\n"})
        installation = gh.install(app, "octo", [REPO, OTHER], dict(PUSH))
        gh.add_collaborator(REPO, "alice", "write")
        gh.create_issue(REPO, "add() subtracts", "")
        settings = Settings.load(
            app_id=app.id,
            app_slug="shipmate",
            private_key=app.private_key_pem,
            github_api_url=gh.url,
            webhook_secret=SECRET,
            data_dir=tmp_path / "data",
        )
        store = Store.from_settings(settings)
        queue = migrate_all(store)
        with running(create_app(settings, store, router)) as base:
            yield Thread(gh, settings, store, queue, base, installation.id)
        store.dispose()


def _listed_comments(thread: Thread) -> int:
    return sum(
        1 for r in thread.gh.requests if r.method == "GET" and r.path.endswith("/issues/1/comments")
    )


def test_a_reply_is_posted_once_when_its_job_runs_again(thread: Thread) -> None:
    delivery = thread.command("/shipmate help")
    assert thread.work() == 1
    (answer,) = thread.answers()
    assert answer.endswith(reply_key(delivery, 1)) and "/shipmate fix" in answer
    assert _listed_comments(thread) == 0  # a first attempt posts without looking
    thread.killed_after_it_acted(delivery)
    assert thread.work() == 1  # attempt 2: the audit trail knows the comment
    assert thread.answers() == [answer] and _listed_comments(thread) == 0
    assert thread.store.get_delivery(delivery).status == "handled"  # type: ignore[union-attr]
    # A new command is answered anew.
    thread.command("/shipmate status")
    assert thread.work() == 1 and len(thread.answers()) == 2


def test_a_reply_posted_just_before_a_kill_is_found_by_its_key(thread: Thread) -> None:
    with killed_before_the_audit_row("comment.create"):
        delivery = thread.command("/shipmate help")
        assert thread.work() == 1  # it posted, then failed (and waits for its retry)
    (answer,) = thread.answers()
    thread.killed_after_it_acted(delivery)
    assert thread.work() == 1  # attempt 2: no audit row; the key on the thread tells
    assert thread.answers() == [answer] and _listed_comments(thread) == 1
    assert thread.store.get_delivery(delivery).status == "handled"  # type: ignore[union-attr]


def test_a_key_planted_by_someone_else_does_not_stop_the_answer(thread: Thread) -> None:
    """A commenter who writes a delivery's hidden key on the thread (copied from the source of
    one of Shipmate's comments) before its retry gets nothing: only Shipmate's own comment,
    with the key at its end, counts as posted."""
    with killed_before_the_audit_row("reaction.create"):
        delivery = thread.command("/shipmate help")
        assert thread.work() == 1 and thread.answers() == []  # failed before its answer
    thread.gh.create_comment(REPO, 1, f"not yours {reply_key(delivery, 1)}", "mallory")
    thread.killed_after_it_acted(delivery)
    assert thread.work() == 1
    (answer,) = thread.answers()
    assert answer.endswith(reply_key(delivery, 1)) and "/shipmate fix" in answer


def test_a_refusal_lost_to_a_kill_is_said_by_the_retry_and_only_once(
    thread: Thread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the refusal was recorded, before it was posted: the retry of the delivery
    that was refused first says it; a later command of the same person gets nothing."""
    posted = ConversationCalls.comment

    async def killed_before_the_post(self: ConversationCalls, number: int, body: str) -> int:
        raise RuntimeError("killed")

    monkeypatch.setattr(ConversationCalls, "comment", killed_before_the_post)
    delivery = thread.command("/shipmate fix", by="mallory")
    assert thread.work() == 1 and thread.answers() == []
    monkeypatch.setattr(ConversationCalls, "comment", posted)
    thread.killed_after_it_acted(delivery)
    assert thread.work() == 1
    (refusal,) = thread.answers()
    assert "only people with write access" in refusal
    thread.killed_after_it_acted(delivery)
    thread.command("/shipmate plan", by="mallory")
    assert thread.work() == 2 and thread.answers() == [refusal]


def test_a_task_is_queued_once_when_its_job_runs_again(thread: Thread) -> None:
    runs: list[int] = []

    async def run(job: Job, context: JobContext) -> None:
        runs.append(job.id)

    delivery = thread.command("/shipmate fix")
    assert thread.work(run) == 2  # the webhook job, then the run job it queued
    (sticky,) = thread.answers()
    thread.killed_after_it_acted(delivery)
    assert thread.work(run) == 1  # the webhook job alone: its run was queued already
    assert len(runs) == 1 and thread.answers() == [sticky]  # the sticky comment untouched


def test_a_repair_queued_just_before_a_kill_counts_once_and_is_not_capped(thread: Thread) -> None:
    """At one repair per failure, the retry of the delivery that queued it must not find the
    cap reached by its own attempt (and tell the pull request a human is needed)."""
    gh = thread.gh
    main = gh.state.repos[REPO].default_branch
    gh.commit(REPO, main, {".github/shipmate.yml": "max_attempts_per_failure: 1\n"}, "cap")
    gh.commit(REPO, "shipmate/1-add", {"notes.txt": "first try\n"}, "Shipmate's first try")
    pull = gh.create_pull(REPO, "shipmate/1-add", "Fix #1: add()", "shipmate[bot]")
    head = pull["head"]["sha"]
    runs: list[int] = []

    async def run(job: Job, context: JobContext) -> None:
        runs.append(job.id)  # queued, and never started before the kill

    delivery = thread.deliver(
        "status",
        None,
        {
            "sha": head,
            "state": "failure",
            "context": "ci/lint",
            "description": "lint: calc.py:2 uses a minus",
            "branches": [{"name": "shipmate/1-add", "commit": {"sha": head}}],
            "sender": {"login": "ci-bot", "type": "User"},
            "repository": {"default_branch": main},
        },
    )
    assert thread.work(run) == 2 and len(runs) == 1
    thread.killed_after_it_acted(delivery)
    assert thread.work(run) == 1 and len(runs) == 1
    said = [c["body"] for c in gh.comments_on(REPO, pull["number"])]
    assert not any("A human needs to take it" in body for body in said)
    assert thread.store.repair_attempts(REPO, pull["number"], _mark(thread, delivery)) == (1, 1)


def _mark(thread: Thread, delivery: str) -> str:
    """The fingerprint of the failure the delivery's job counted a repair of."""
    (row,) = [
        r for r in thread.store.audit_for_delivery(delivery) if r["action"] == "repair.attempt"
    ]
    return str(row["detail"]["fingerprint"])


def _repositories_added(thread: Thread, *names: str) -> str:
    added = [{"full_name": name, "name": name.split("/")[1]} for name in names]
    return thread.deliver(
        "installation_repositories",
        "added",
        {
            "repositories_added": added,
            "repositories_removed": [],
            "installation": {"id": thread.installation_id, "account": {"login": "octo"}},
        },
        repo=None,
    )


def _config_checks(thread: Thread) -> list[dict[str, Any]]:
    runs = thread.gh.state.check_runs.values()
    return sorted((r for r in runs if r["name"] == "Shipmate config"), key=lambda r: r["id"])


def _requests(thread: Thread, method: str, ending: str) -> int:
    return sum(1 for r in thread.gh.requests if r.method == method and r.path.endswith(ending))


def test_a_config_check_is_created_once_when_its_job_runs_again(thread: Thread) -> None:
    delivery = _repositories_added(thread, REPO, OTHER)
    assert thread.work() == 1
    first = _config_checks(thread)
    assert [(r["_repo"], r["external_id"], r["conclusion"]) for r in first] == [
        (REPO, delivery, "success"),
        (OTHER, delivery, "success"),
    ]
    assert _requests(thread, "GET", "/check-runs") == 0  # a first attempt creates unlooked
    thread.killed_after_it_acted(delivery)
    assert thread.work() == 1  # attempt 2 finds each on its commit, by the delivery's key
    assert [r["id"] for r in _config_checks(thread)] == [r["id"] for r in first]
    assert _requests(thread, "POST", "/check-runs") == 2
    assert _requests(thread, "PATCH", "/check-runs/" + str(first[0]["id"])) == 1
    assert thread.store.get_delivery(delivery).status == "handled"  # type: ignore[union-attr]
    # Another delivery checks again: a check run of its own.
    _repositories_added(thread, REPO)
    assert thread.work() == 1 and len(_config_checks(thread)) == 3


def test_a_job_killed_between_two_config_checks_ends_with_one_of_each(thread: Thread) -> None:
    """Killed after the first repository's check went out, before the second's: the retry
    updates the first and creates the second. Another App's check run of the same name with
    the delivery's key on the second commit is not taken for Shipmate's."""
    with killed_before_the_audit_row("check_run.create"):
        delivery = _repositories_added(thread, REPO, OTHER)
        assert thread.work() == 1
    (ours,) = _config_checks(thread)
    assert ours["_repo"] == REPO
    main = thread.gh.state.repos[OTHER].default_branch
    other_sha = str(thread.gh.branch_sha(OTHER, main))
    thread.gh.create_check_suite(
        OTHER,
        head_sha=other_sha,
        head_branch=main,
        app_slug="mallory-ci",
        check_runs=[{"name": "Shipmate config", "external_id": delivery, "conclusion": "failure"}],
    )
    thread.killed_after_it_acted(delivery)
    assert thread.work() == 1
    checks = _config_checks(thread)
    mine = [(r["_repo"], r["conclusion"]) for r in checks if r["app"]["slug"] == "shipmate"]
    assert mine == [(REPO, "success"), (OTHER, "success")]
    assert checks[0]["id"] == ours["id"] and len(checks) == 3
    planted = next(r for r in checks if r["app"]["slug"] == "mallory-ci")
    assert planted["conclusion"] == "failure"  # untouched
    assert {r["head_sha"] for r in checks if r["_repo"] == OTHER} == {other_sha}


def test_the_key_is_hidden_at_the_end_and_taken_off_again() -> None:
    body = "Nothing is running here.\n\n<!-- a comment of the author's own -->"
    key = reply_key("d-1", 2)
    assert marked(body, key) == f"{body}\n\n<!-- shipmate:reply d-1/2 -->"
    assert unmarked(marked(body, key)) == body and unmarked(body) == body
