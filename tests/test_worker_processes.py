"""Real `shipmate worker` processes on PostgreSQL (procrastinate) and the GitHub stand-in, fed by
a `shipmate serve --no-worker`: SIGTERM lets a running job finish within the grace period, or
past it releases the job (never lost, never left running) and exits; the next worker takes the
released job and the ones that waited, and answers each comment once. A worker SIGKILLed between
two repositories' config checks leaves one check run on each once another worker has run the
job again."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from standins.github import GitHubStandIn
from tests.dbs import postgres_available
from tests.processes import (
    CHECKED,
    REPO,
    Database,
    checked_added,
    healthy,
    migrate,
    shipmate_env,
    start,
    stop,
    wait_until,
    world,
)
from tests.servers import free_port

pytestmark = pytest.mark.skipif(not postgres_available(), reason="needs PostgreSQL")

SECRET = "drain-secret"
REACTIONS = f"POST /repos/{REPO}/issues/comments/{{comment_id}}/reactions"


class Shipmate(Database):
    """One web process and the workers a test starts, on one database and the stand-in."""

    def __init__(self, root: Path, url: str, gh: GitHubStandIn, installation_id: int) -> None:
        self.root, self.gh, self.installation_id = root, gh, installation_id
        super().__init__(url)
        self.env: dict[str, str] = {}
        self.base = ""
        self.stack = ExitStack()

    def serve(self, env: dict[str, str]) -> None:
        self.env = env
        migrate(env)
        port = free_port()
        args = ["serve", "--no-worker", "--workers", "1", "--port", str(port)]
        self.stack.callback(stop, start(args, self._env("web"), self.root / "web.log"))
        self.base = f"http://127.0.0.1:{port}"
        wait_until(lambda: healthy(self.base), 30, "web healthy")

    def worker(self, name: str, **settings: str) -> subprocess.Popen[bytes]:
        """`shipmate worker --concurrency 1` with these SHIPMATE_* `settings`, once it beats."""
        before = self.scalar("SELECT count(*) FROM workers")
        env = {**self._env(name), **{f"SHIPMATE_{k.upper()}": v for k, v in settings.items()}}
        process = start(["worker", "--concurrency", "1"], env, self.root / f"{name}.log")
        self.stack.callback(stop, process)
        wait_until(lambda: self.scalar("SELECT count(*) FROM workers") > before, 30, "beating")
        return process

    def _env(self, name: str) -> dict[str, str]:
        return {**self.env, "SHIPMATE_DATA_DIR": str(self.root / name)}

    def command(self, number: int, text: str) -> tuple[str, int]:
        """alice comments `text` on issue `number`: (the delivery id, the comment's id)."""
        made = self.gh.create_comment(REPO, number, text, "alice")
        overrides = {
            "comment": {"id": made["id"], "body": text, "user": {"login": "alice"}},
            "issue": {"number": number, "title": f"issue {number}", "body": ""},
        }
        return self.deliver("issue_comment", "created", overrides, repo=REPO), int(made["id"])

    def deliver(self, event: str, action: str, overrides: dict[str, Any], **fields: Any) -> str:
        headers, body = self.gh.delivery(
            event,
            action,
            overrides,
            secret=SECRET,
            sender="alice",
            installation_id=self.installation_id,
            **fields,
        )
        response = httpx.post(f"{self.base}/api/github/webhooks", content=body, headers=headers)
        assert response.status_code == 202, response.text
        return headers["X-GitHub-Delivery"]

    def job(self, delivery_id: str) -> tuple[str, int]:
        """The status and attempts (procrastinate's count of those that ended) of the
        delivery's job."""
        rows = self.rows(
            "SELECT status, attempts FROM procrastinate_jobs WHERE task_name = 'webhook'"
            f" AND args->>'delivery_id' = '{delivery_id}'"
        )
        assert len(rows) == 1, rows
        return str(rows[0][0]), int(rows[0][1])

    def delivery_status(self, delivery_id: str) -> str:
        query = f"SELECT status FROM deliveries WHERE delivery_id = '{delivery_id}'"
        return str(self.scalar(query))

    def arrived(self, method: str, path: str) -> bool:
        """Whether a request reached the stand-in (before any fault made it wait)."""
        return any(r.method == method and r.path == path for r in list(self.gh.requests))

    def answers(self) -> Counter[str]:
        """How many of Shipmate's answers carry each delivery's key."""
        found = Counter[str]()
        for comment in self.gh.state.comments.values():
            if comment["user"]["login"] == "shipmate[bot]":
                found.update(re.findall(r"<!-- shipmate:reply (\S+)/1 -->", comment["body"]))
        return found

    def eyes(self, comment_id: int) -> int:
        reactions = self.gh.state.reactions
        return sum(1 for r in reactions if r["comment_id"] == comment_id and r["content"] == "eyes")


@pytest.fixture
def shipmate(tmp_path: Path) -> Iterator[Shipmate]:
    with world(tmp_path) as (url, gh, app, installation):
        for n in range(2):
            gh.create_issue(REPO, f"issue {n + 1}")
        found = Shipmate(tmp_path, url, gh, installation.id)
        with found.stack:
            found.serve(shipmate_env(url, gh.url, app, SECRET))
            yield found
        found.engine.dispose()


def _terminated(process: subprocess.Popen[bytes], within: float) -> float:
    """SIGTERM `process`; the seconds until it exited (cleanly, within `within`)."""
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(within) == 0
    return time.monotonic() - began


def test_sigterm_lets_the_running_job_finish_within_the_grace_period(shipmate: Shipmate) -> None:
    shipmate.gh.fail(REACTIONS, "slow", seconds=2.0)
    worker = shipmate.worker("first", worker_grace_seconds="20")
    delivery, comment = shipmate.command(1, "/shipmate help")
    wait_until(lambda: shipmate.job(delivery)[0] == "doing", 30, "job running")
    path = f"/repos/{REPO}/issues/comments/{comment}/reactions"
    wait_until(lambda: shipmate.arrived("POST", path), 30, "👀 asked")
    took = _terminated(worker, within=20)
    assert 1.0 < took < 20  # it waited for the job, and no longer than the grace period
    assert shipmate.job(delivery) == ("succeeded", 1)  # one attempt
    assert shipmate.delivery_status(delivery) == "handled"
    assert shipmate.eyes(comment) == 1 and shipmate.answers() == {delivery: 1}
    assert shipmate.scalar("SELECT count(*) FROM workers") == 0


def test_sigterm_past_the_grace_period_releases_the_job_to_the_next_worker(
    shipmate: Shipmate,
) -> None:
    shipmate.gh.fail(REACTIONS, "slow", seconds=8.0)  # GitHub slow to take the first 👀
    first = shipmate.worker("first", worker_grace_seconds="1", webhook_concurrency="1")
    slow, slow_comment = shipmate.command(1, "/shipmate help")
    wait_until(lambda: shipmate.job(slow)[0] == "doing", 30, "job running")
    waiting, waiting_comment = shipmate.command(2, "/shipmate status")  # no free slot: it waits
    path = f"/repos/{REPO}/issues/comments/{slow_comment}/reactions"
    wait_until(lambda: shipmate.arrived("POST", path), 30, "👀 asked")
    took = _terminated(first, within=10)
    assert took < 1 + 5  # the grace period and the way out; the job would take 8 s
    # Released, not lost and not left running; the waiting job was not taken on the way out.
    assert shipmate.job(slow)[0] == "todo" and shipmate.job(waiting) == ("todo", 0)
    assert shipmate.delivery_status(slow) == "queued"
    assert shipmate.scalar("SELECT count(*) FROM workers") == 0

    shipmate.worker("second")
    for delivery in (slow, waiting):
        wait_until(lambda d=delivery: shipmate.job(d)[0] == "succeeded", 60, "jobs done")
        assert shipmate.delivery_status(delivery) == "handled"
    assert shipmate.job(slow)[1] == 2  # released once, then done
    assert shipmate.answers() == {slow: 1, waiting: 1}
    assert shipmate.eyes(slow_comment) == 1 and shipmate.eyes(waiting_comment) == 1


def test_a_worker_killed_between_two_config_checks_leaves_one_check_run_on_each(
    shipmate: Shipmate,
) -> None:
    shipmate.gh.fail(f"GET /repos/{CHECKED[1]}", "slow", seconds=5.0)
    first = shipmate.worker("first")
    added = checked_added(shipmate.installation_id)
    delivery = shipmate.deliver("installation_repositories", "added", added)
    gh = shipmate.gh
    wait_until(lambda: shipmate.arrived("GET", f"/repos/{CHECKED[1]}"), 30, "second repository")
    assert [r["_repo"] for r in gh.state.check_runs.values()] == [CHECKED[0]]
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    shipmate.worker("second")  # takes the job once the first has been silent 5 s
    wait_until(lambda: shipmate.job(delivery)[0] == "succeeded", 60, "job run again")
    assert shipmate.job(delivery)[1] == 2 and shipmate.delivery_status(delivery) == "handled"
    runs = [(r["_repo"], r["name"], r["external_id"]) for r in gh.state.check_runs.values()]
    assert sorted(runs) == [(name, "Shipmate config", delivery) for name in CHECKED]
