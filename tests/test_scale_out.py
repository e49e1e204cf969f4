"""Beyond one machine: two `shipmate serve --no-worker` and three `shipmate worker` processes on
one PostgreSQL (a fresh schema), the GitHub stand-in, 1,000 command comments across 50 issues
and pull requests with 50 installation events among them (each a config check run on two
repositories, the second one slow to answer), and one web and one worker process SIGKILLed
part-way. Afterwards every accepted delivery was handled once, one 👀 and one answer per
comment, one config check run per repository and event, no two jobs of one thread overlapped,
and no job is lost or left running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from standins.github import GitHubStandIn
from tests import processes
from tests.dbs import postgres_available
from tests.processes import CHECKED, REPO, Database, wait_until
from tests.servers import free_port

pytestmark = pytest.mark.skipif(not postgres_available(), reason="needs PostgreSQL")

SECRET = "scale-secret"
DELIVERIES = int(os.environ.get("SHIPMATE_TEST_DELIVERIES", "1000"))
ISSUES, PULLS = 40, 10
# One installation event after every CHECK_EVERY comments, adding CHECKED.
CHECK_EVERY = 20


class Cluster(Database):
    """The processes, their settings, and the database they share."""

    def __init__(
        self, root: Path, url: str, gh: GitHubStandIn, env: dict[str, str], installation: int
    ) -> None:
        self.root, self.url, self.gh, self.env = root, url, gh, env
        self.installation_id = installation
        self.webs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        super().__init__(url)

    def start(self, stack: ExitStack) -> None:
        processes.migrate(self.env)
        for n in range(2):
            port = free_port()
            args = ["serve", "--no-worker", "--workers", "1", "--port", str(port)]
            web = processes.start(args, self._env(f"web{n}"), self.root / f"web{n}.log")
            stack.callback(processes.stop, web)
            self.webs.append((f"http://127.0.0.1:{port}", web))
        for n in range(3):
            args = ["worker", "--concurrency", "1"]
            worker = processes.start(args, self._env(f"worker{n}"), self.root / f"worker{n}.log")
            stack.callback(processes.stop, worker)
            self.workers.append(worker)
        for base, _ in self.webs:
            wait_until(lambda base=base: processes.healthy(base), 30, f"{base} healthy")
        wait_until(lambda: self.scalar("SELECT count(*) FROM workers") == 3, 30, "workers up")

    def _env(self, name: str) -> dict[str, str]:
        return {**self.env, "SHIPMATE_DATA_DIR": str(self.root / name)}


def _threads(gh: GitHubStandIn) -> list[tuple[int, bool]]:
    """(number, is a pull request) of 40 issues and 10 pull requests."""
    threads = [(int(gh.create_issue(REPO, f"issue {n}")["number"]), False) for n in range(ISSUES)]
    for n in range(PULLS):
        gh.commit(REPO, f"feature-{n}", {f"f{n}.txt": "x\n"})
        threads.append(
            (int(gh.create_pull(REPO, f"feature-{n}", f"pr {n}", "bob")["number"]), True)
        )
    return threads


Deliveries = list[tuple[dict[str, str], bytes]]


def _deliveries(gh: GitHubStandIn, installation_id: int) -> tuple[Deliveries, set[str]]:
    """The command comments with an installation event after every CHECK_EVERY of them; and
    the ids of those events."""
    threads = _threads(gh)
    made, checks = [], set()
    for n in range(DELIVERIES):
        number, is_pull = threads[n % len(threads)]
        text = "/shipmate help" if n % 2 else "/shipmate status"
        comment = gh.create_comment(REPO, number, text, "alice")
        issue: dict[str, Any] = {"number": number, "title": f"thread {number}", "body": ""}
        if is_pull:
            issue["pull_request"] = {"url": f"{gh.url}/repos/{REPO}/pulls/{number}"}
        overrides = {
            "comment": {"id": comment["id"], "body": text, "user": {"login": "alice"}},
            "issue": issue,
        }
        made.append(
            gh.delivery(
                "issue_comment",
                "created",
                overrides,
                secret=SECRET,
                repo=REPO,
                sender="alice",
                installation_id=installation_id,
            )
        )
        if n % CHECK_EVERY == CHECK_EVERY - 1:
            made.append(_repositories_added(gh, installation_id, f"admin-{n}"))
            checks.add(made[-1][0]["X-GitHub-Delivery"])
    return made, checks


def _repositories_added(
    gh: GitHubStandIn, installation_id: int, sender: str
) -> tuple[dict[str, str], bytes]:
    """`sender` adds CHECKED to the installation (each event by its own: the same body twice
    would be a replay)."""
    return gh.delivery(
        "installation_repositories",
        "added",
        processes.checked_added(installation_id),
        secret=SECRET,
        sender=sender,
        installation_id=installation_id,
    )


def _send(cluster: Cluster, deliveries: Deliveries) -> dict[str, str]:
    """Send each delivery to the web processes in turn; one that fails in transit (its process
    was killed) is sent again to the other, with the same id, as GitHub's redelivery would.
    Kill a worker and a web process after two fifths. Returns delivery id -> final status."""
    kill_after = len(deliveries) * 2 // 5
    answers: dict[str, str] = {}
    sent = Counter[str]()
    clients = threading.local()  # one client a thread: a new one costs a TLS context

    def one(index: int) -> None:
        headers, body = deliveries[index]
        if not hasattr(clients, "client"):
            clients.client = httpx.Client(timeout=30)
        for attempt in range(4):
            base, _ = cluster.webs[(index + attempt) % 2]
            try:
                response = clients.client.post(
                    f"{base}/api/github/webhooks", content=body, headers=headers
                )
            except httpx.TransportError:
                sent["lost in transit"] += 1
                continue
            answers[headers["X-GitHub-Delivery"]] = response.json()["status"]
            return

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(kill_after)))
        cluster.workers[0].send_signal(signal.SIGKILL)
        cluster.webs[0][1].send_signal(signal.SIGKILL)
        list(pool.map(one, range(kill_after, len(deliveries))))
    print(f"resent after a transport error: {sent['lost in transit']}")
    return answers


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with ExitStack() as stack:
        url, gh, app, installation = stack.enter_context(processes.world(tmp_path))
        # A config check's job is slow after its first check run went out, so the kill has a
        # fair chance of landing between the two.
        gh.fail(f"GET /repos/{CHECKED[1]}", "slow", times=10**6, seconds=0.3)
        env = processes.shipmate_env(url, gh.url, app, SECRET)
        found = Cluster(tmp_path, url, gh, env, installation.id)
        found.start(stack)
        yield found
        found.engine.dispose()


def test_many_processes_lose_and_double_nothing(cluster: Cluster) -> None:
    gh = cluster.gh
    deliveries, checks = _deliveries(gh, cluster.installation_id)
    started = time.monotonic()
    answers = _send(cluster, deliveries)
    print(f"sent in {time.monotonic() - started:.1f} s")
    accepted = {d for d, status in answers.items() if status in ("queued", "duplicate")}
    assert len(answers) == len(deliveries) and set(answers.values()) <= {"queued", "duplicate"}
    commands = accepted - checks
    wait_until(
        lambda: (
            cluster.scalar(
                "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
                " AND task_name = 'webhook'"
            )
            == 0
        ),
        120,  # a bound, not a wait: the machine may be shared
        "every job finished",
    )
    elapsed = time.monotonic() - started

    statuses = dict(cluster.rows("SELECT delivery_id, status FROM deliveries"))
    assert accepted <= set(statuses) and set(statuses.values()) == {"handled"}
    jobs = cluster.rows(
        "SELECT args->>'delivery_id', status, attempts FROM procrastinate_jobs"
        " WHERE task_name = 'webhook'"
    )
    per_delivery = Counter(delivery for delivery, _, _ in jobs)
    assert set(per_delivery) == accepted and set(per_delivery.values()) == {1}
    assert {status for _, status, _ in jobs} == {"succeeded"}
    recovered = [d for d, _, attempts in jobs if attempts > 1]

    comments = [c for c in gh.state.comments.values() if c["body"].startswith("/shipmate")]
    eyes = Counter(r["comment_id"] for r in gh.state.reactions if r["content"] == "eyes")
    assert len(comments) == DELIVERIES and all(eyes[c["id"]] == 1 for c in comments)
    reaction_posts = sum(1 for r in gh.requests if r.path.endswith("/reactions"))
    # One answer per command comment, whatever was killed: each answer carries the key of
    # the delivery it answers (bot/github/replies.py), and no key is there twice.
    answers = [c for c in gh.state.comments.values() if c["user"]["login"] == "shipmate[bot]"]
    keys = Counter(
        tuple(re.findall(r"<!-- shipmate:reply (\S+)/1 -->", c["body"])) for c in answers
    )
    doubled = len(answers) - len(keys)
    assert len(answers) == len(comments) and all(len(k) == 1 for k in keys)
    assert {k[0] for k in keys} == commands and set(keys.values()) == {1}
    answers_on = Counter(c["issue"] for c in answers)
    assert answers_on == Counter(c["issue"] for c in comments)
    # One config check run per repository and installation event, whatever was killed.
    config = [r for r in gh.state.check_runs.values() if r["name"] == "Shipmate config"]
    made = Counter((r["_repo"], r["external_id"]) for r in config)
    assert set(made) == {(repo, d) for repo in CHECKED for d in checks}
    assert set(made.values()) == {1}
    checks_again = sum(1 for d, _, attempts in jobs if d in checks and attempts > 1)

    overlaps = _overlapping_jobs_of_one_thread(cluster)
    assert overlaps == []
    print(
        f"accepted {len(accepted)} deliveries in {elapsed:.1f} s; jobs {len(jobs)}, "
        f"run again after the kill {len(recovered)}; 👀 {sum(eyes.values())} "
        f"({reaction_posts} reaction requests); answers doubled {doubled}; config check runs "
        f"{len(config)} for {len(checks)} events, {checks_again} of them run again; overlaps 0"
    )


def _overlapping_jobs_of_one_thread(cluster: Cluster) -> list[str]:
    """Locks (threads) two of whose jobs were ever running at once: each job's time running
    is from a 'started' event to the event that ended it (done, failed, retried)."""
    events = cluster.rows(
        "SELECT j.lock, e.job_id, e.type, e.at FROM procrastinate_events e"
        " JOIN procrastinate_jobs j ON j.id = e.job_id"
        " WHERE j.task_name = 'webhook' ORDER BY e.at, e.id"
    )
    running: dict[str, set[int]] = {}
    overlapping = set()
    for lock, job_id, kind, _ in events:
        if lock is None:
            continue  # an installation event's: no thread, no lock
        held = running.setdefault(lock, set())
        if kind == "started":
            if held:
                overlapping.add(lock)
            held.add(job_id)
        elif kind in ("succeeded", "failed", "deferred_for_retry", "aborted"):
            held.discard(job_id)
    return sorted(overlapping)
