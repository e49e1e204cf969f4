"""The dashboard's queue page shows who takes jobs: each worker's slots and how many are busy,
as the worker reports them every heartbeat, a worker whose heartbeat stopped as stale (its
slots not counted), and a draining worker gone once it stopped."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.config import Settings
from bot.db import workers
from bot.db.store import Store
from bot.intake.app import create_app
from bot.jobs.queue import Job
from bot.jobs.sql import SQLQueue
from bot.jobs.worker import JobContext, Worker
from handlers import router
from tests.dbs import migrate_all
from tests.servers import running

TOKEN = "queue-page-admin-token"


def _signed_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, follow_redirects=True)
    form = client.get("/dashboard/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    answer = client.post(
        "/dashboard/login", data={"csrf": csrf.group(1), "token": TOKEN, "next": "/dashboard/"}
    )
    assert answer.status_code == 200 and "/dashboard/login" not in str(answer.url)
    return client


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Store, SQLQueue]]:
    settings = Settings.load(
        data_dir=tmp_path / "data", admin_token=TOKEN, worker_heartbeat_seconds=0.2
    )
    store = Store.from_settings(settings)
    queue = migrate_all(store)
    with running(create_app(settings, store, router, queue=queue)) as base:
        yield base, store, queue
    store.dispose()


def test_the_queue_page_shows_each_workers_capacity_and_load(
    site: tuple[str, Store, SQLQueue],
) -> None:
    base, store, queue = site
    release = threading.Event()
    started = threading.Event()

    async def block(job: Job, context: JobContext) -> None:
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.02)

    worker = Worker(queue, {"block": block}, concurrency=3, heartbeat_seconds=0.2)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(stop),))
    thread.start()
    # A worker killed an hour ago: its row stays until recovery prunes it.
    workers.report(
        store.engine,
        "gone:1:abc",
        host="gone",
        pid=1,
        backend="sql",
        capacity=8,
        running=2,
        state="running",
        started_at=time.time() - 7200,
    )
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE workers SET heartbeat_at = heartbeat_at - 3600")
    try:
        queue.enqueue("block", {})
        assert started.wait(10)
        deadline = time.monotonic() + 10
        while [w["running"] for w in workers.listed(store.engine) if w["host"] != "gone"] != [1]:
            assert time.monotonic() < deadline, "the load never reached the workers table"
            time.sleep(0.05)
        client = _signed_in(base)
        page = client.get("/dashboard/queue").text
        client.close()
        load = re.sub(r"<[^>]+>", "", page.split('id="load">', 1)[1].split("</p>", 1)[0])
        assert load == "1 of 3 slots busy across 1 worker."  # the stale one is not counted
        rows = page.split('id="workers">', 1)[1].split("</table>", 1)[0]
        assert f":{worker.load.worker_id.split(':')[1]}</td><td>sql</td>" in rows
        assert "1/3</td>" in rows and "gone:1</td>" in rows and ">stale<" in rows
    finally:
        release.set()
        loop.call_soon_threadsafe(stop.set)
        thread.join(20)
        loop.close()
    assert [w["host"] for w in workers.listed(store.engine)] == ["gone"]  # it removed its row


def test_the_pages_redact_every_secret_the_process_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The model's key is no setting of Shipmate's, yet a page showing it (here as a worker's
    # host name) shows it redacted, as the logs and what is posted on GitHub do.
    key = "sk-ant-api03-" + "k" * 40
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    settings = Settings.load(data_dir=tmp_path / "data", admin_token=TOKEN)
    store = Store.from_settings(settings)
    queue = migrate_all(store)
    now = time.time()
    workers.report(
        store.engine,
        "w1",
        host=f"host-{key}",
        pid=1,
        backend="sql",
        capacity=1,
        running=0,
        state="running",
        started_at=now,
    )
    with running(create_app(settings, store, router, queue=queue)) as base:
        page = _signed_in(base).get("/dashboard/queue").text
    store.dispose()
    assert key not in page and "host-[REDACTED]" in page
