"""The intake against a real uvicorn server: every recorded GitHub payload, and every bad input."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from structlog.testing import capture_logs

from bot.app import job_handlers
from bot.config import Settings
from bot.db.store import Store
from bot.intake.app import create_app
from bot.intake.webhooks import sign
from bot.jobs.sql import SQLQueue
from bot.jobs.worker import Worker
from bot.triggers.context import Context
from bot.triggers.routing import Router
from handlers import installations, ping
from handlers import router as real_router
from tests.conftest import WEBHOOK_FIXTURES
from tests.dbs import migrate_all
from tests.servers import running

SECRET = "test-secret"
FIXTURES = sorted(WEBHOOK_FIXTURES.glob("*/*.json"))


def _post(
    base: str,
    event: str,
    body: bytes,
    *,
    secret: str = SECRET,
    delivery: str | None = None,
    content_type: str = "application/json",
) -> httpx.Response:
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body, secret),
        "Content-Type": content_type,
        "User-Agent": "GitHub-Hookshot/test",
    }
    return httpx.post(f"{base}/api/github/webhooks", content=body, headers=headers, timeout=30)


class Counting:
    """A router that counts every delivery it is handed, on top of the real handlers."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.router = Router()
        for event in {p.parent.name for p in FIXTURES}:
            self.router.register(event)(self.count)

    async def count(self, context: Context) -> None:
        self.calls[context.delivery_id] += 1


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load(webhook_secret=f"{SECRET},old-secret", data_dir=tmp_path)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = Store.from_settings(settings)
    migrate_all(store)
    yield store
    store.dispose()


def test_every_recorded_payload_is_answered_and_routed_once(
    settings: Settings, store: Store
) -> None:
    counting = Counting()
    # The handlers that need no GitHub App, plus a counter on every event.
    router = Router(ping.router, installations.router, counting.router)
    sent: dict[str, tuple[str, str | None]] = {}
    with running(create_app(settings, store, router)) as base:
        for path in FIXTURES:
            event = path.parent.name
            body = path.read_bytes()
            delivery = str(uuid.uuid4())
            response = _post(base, event, body, delivery=delivery)
            expected = (200, "pong") if event == "ping" else (202, "queued")
            assert (response.status_code, response.json()["status"]) == expected, path.name
            assert response.json()["delivery"] == delivery
            sent[delivery] = (event, json.loads(body).get("action"))
    queue = SQLQueue(store)
    worker = Worker(queue, job_handlers(settings, store, queue, router=router))
    ran = asyncio.run(worker.run_until_idle())
    assert ran == len(FIXTURES)
    assert counting.calls == Counter(dict.fromkeys(sent, 1))
    assert queue.counts() == {"done": len(FIXTURES)}
    assert store.count_deliveries("handled") == len(FIXTURES)
    # The real handlers did their part: installations were recorded.
    installation = json.loads(
        (WEBHOOK_FIXTURES / "installation" / "created.payload.json").read_text()
    )
    assert store.get_installation(installation["installation"]["id"]) is not None


def test_every_recorded_payload_is_queued_or_ignored_as_the_real_router_routes_it(
    settings: Settings, store: Store
) -> None:
    expected: dict[str, str] = {}
    with running(create_app(settings, store, real_router)) as base:
        for path in FIXTURES:
            event = path.parent.name
            body = path.read_bytes()
            action = json.loads(body).get("action")
            delivery = str(uuid.uuid4())
            if event == "ping":
                status = "pong"
            else:
                status = "queued" if real_router.handles(event, action) else "ignored"
            response = _post(base, event, body, delivery=delivery)
            assert response.status_code == (200 if event == "ping" else 202), path.name
            assert response.json() == {"status": status, "delivery": delivery}, path.name
            expected[delivery] = "ignored" if status == "ignored" else "queued"
    statuses = Counter(expected.values())
    assert statuses["queued"] and statuses["ignored"]  # the corpus exercises both
    for delivery, status in expected.items():
        stored = store.get_delivery(delivery)
        assert stored is not None and stored.status == status
    queue = SQLQueue(store)
    jobs = []
    while (job := queue.claim("w", 30)) is not None:
        jobs.append(job.payload["delivery_id"])
        queue.complete(job)  # the next delivery of the same issue or PR waits for this one
    assert sorted(jobs) == sorted(d for d, s in expected.items() if s == "queued")


def test_events_nobody_handles_are_stored_and_ignored(settings: Settings, store: Store) -> None:
    body = (WEBHOOK_FIXTURES / "push" / "payload.json").read_bytes()
    with running(create_app(settings, store, Router())) as base:
        response = _post(base, "push", body, delivery="push-1")
        assert (response.status_code, response.json()) == (
            202,
            {"status": "ignored", "delivery": "push-1"},
        )
        again = _post(base, "push", body, delivery="push-1")
        assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert SQLQueue(store).counts() == {}
    stored = store.get_delivery("push-1")
    assert stored is not None and stored.status == "ignored" and stored.payload == body


def test_bad_inputs(settings: Settings, store: Store) -> None:
    body = (WEBHOOK_FIXTURES / "issues" / "opened.payload.json").read_bytes()
    with running(create_app(settings, store, real_router)) as base:
        url = f"{base}/api/github/webhooks"
        bad_sig = _post(base, "issues", body, secret="wrong")
        assert bad_sig.status_code == 401 and SECRET not in bad_sig.text
        no_sig = httpx.post(
            url, content=body, headers={"X-GitHub-Event": "issues", "X-GitHub-Delivery": "x"}
        )
        assert no_sig.status_code == 401 and "X-Hub-Signature-256" in no_sig.json()["error"]
        no_event = httpx.post(
            url,
            content=body,
            headers={"X-GitHub-Delivery": "x", "X-Hub-Signature-256": sign(body, SECRET)},
        )
        assert no_event.status_code == 400 and "X-GitHub-Event" in no_event.json()["error"]
        not_json = _post(base, "issues", b"{nope")
        assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]
        not_object = _post(base, "issues", b"[]")
        assert not_object.status_code == 400
        wrong_method = httpx.get(url)
        assert wrong_method.status_code == 405 and wrong_method.json()["status"] == "error"
        assert wrong_method.headers["allow"] == "POST"
        put = httpx.put(url, content=body)
        assert put.status_code == 405 and put.headers["allow"] == "POST"
    assert store.count_deliveries() == 0


def test_secret_rotation_accepts_old_and_new(settings: Settings, store: Store) -> None:
    body = (WEBHOOK_FIXTURES / "issues" / "opened.payload.json").read_bytes()
    with running(create_app(settings, store, real_router)) as base:
        assert _post(base, "issues", body, secret=SECRET).status_code == 202
        assert _post(base, "issues", body, secret="old-secret").status_code == 202
        assert _post(base, "issues", body, secret="retired").status_code == 401


def test_form_encoded_delivery(settings: Settings, store: Store) -> None:
    payload = (WEBHOOK_FIXTURES / "ping" / "payload.json").read_text()
    form = urlencode({"payload": payload}).encode()
    with running(create_app(settings, store, real_router)) as base:
        response = _post(
            base, "ping", form, content_type="application/x-www-form-urlencoded", delivery="f1"
        )
        assert (response.status_code, response.json()["status"]) == (200, "pong")
    stored = store.get_delivery("f1")
    assert stored is not None and json.loads(stored.payload) == json.loads(payload)


def test_oversized_body_is_refused_without_reading_it(settings: Settings, store: Store) -> None:
    with running(create_app(settings, store, real_router)) as base:
        port = int(base.rsplit(":", 1)[1])
        # Announce 26 MiB and send none of it: the answer must come at once.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                b"POST /api/github/webhooks HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
                b"X-GitHub-Delivery: big\r\nContent-Length: 27262976\r\n\r\n"
            )
            head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 413")

        def chunks() -> Iterator[bytes]:
            for _ in range(30):
                yield b"x" * (1024 * 1024)

        streamed = httpx.post(
            f"{base}/api/github/webhooks",
            content=chunks(),
            headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "big2"},
            timeout=30,
        )
        assert streamed.status_code == 413 and "25 MiB" in streamed.json()["error"]
    assert store.count_deliveries() == 0


def test_rejected_deliveries_are_logged_with_the_reason_never_the_secret(
    settings: Settings, store: Store
) -> None:
    body = (WEBHOOK_FIXTURES / "issues" / "opened.payload.json").read_bytes()
    with running(create_app(settings, store, real_router)) as base:
        port = int(base.rsplit(":", 1)[1])
        with capture_logs() as logs:
            _post(base, "issues", body, secret="wrong", delivery="forged")
            httpx.post(
                f"{base}/api/github/webhooks", content=body, headers={"X-GitHub-Delivery": "d"}
            )
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(
                    b"POST /api/github/webhooks HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
                    b"X-GitHub-Delivery: big\r\nContent-Length: 27262976\r\n\r\n"
                )
                assert sock.recv(4096).startswith(b"HTTP/1.1 413")
            _post(base, "issues", body, delivery="fine")  # accepted: not a rejection
    rejected = [line for line in logs if line["event"] == "webhook.rejected"]
    assert [(r["status"], r["delivery_id"], r["reason"]) for r in rejected] == [
        (401, "forged", "X-Hub-Signature-256 does not match the body"),
        (400, "d", "missing X-GitHub-Event header"),
        (413, "big", "body is larger than 25 MiB"),
    ]
    assert all(r["log_level"] == "warning" and r["client"] == "127.0.0.1" for r in rejected)
    assert SECRET not in repr(logs) and "old-secret" not in repr(logs)
    assert sign(body, "wrong") not in repr(logs)


def test_dedupe_survives_a_restart(settings: Settings) -> None:
    body = (WEBHOOK_FIXTURES / "issues" / "opened.payload.json").read_bytes()
    for expected in ((202, "ignored"), (200, "duplicate")):
        store = Store.from_settings(settings)
        migrate_all(store)
        with running(create_app(settings, store, real_router)) as base:
            response = _post(base, "issues", body, delivery="same-id")
            assert (response.status_code, response.json()["status"]) == expected
        store.dispose()


def test_healthz(settings: Settings, store: Store) -> None:
    with running(create_app(settings, store, real_router)) as base:
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    broken = Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    with running(create_app(settings, broken, real_router)) as base:
        response = httpx.get(f"{base}/healthz", timeout=10)
        assert response.status_code == 503


def test_storage_failure_is_a_503_not_a_lost_2xx(settings: Settings) -> None:
    broken = Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    body = (WEBHOOK_FIXTURES / "issues" / "opened.payload.json").read_bytes()
    with running(create_app(settings, broken, real_router)) as base:
        response = _post(base, "issues", body)
        assert response.status_code == 503 and response.json()["status"] == "error"
