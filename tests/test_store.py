from __future__ import annotations

import base64
import contextlib
import multiprocessing
import random
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from bot.db import schema
from bot.db.deliveries import Delivery
from bot.db.engine import FairLock
from bot.db.store import Store
from bot.jobs import sql as sql_queue
from bot.jobs.sql import SQLQueue
from tests.dbs import migrate_all


def _delivery(delivery_id: str, handled: bool = True) -> Delivery:
    return Delivery(
        delivery_id=delivery_id,
        event="issue_comment",
        action="created",
        payload=b'{"action": "created"}',
        handled=handled,
        installation_id=7,
        repository="octo/widgets",
    )


def _jobs(store: Store) -> list[dict[str, object]]:
    with store.engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(select(sql_queue.jobs).order_by(sql_queue.jobs.c.id))
        ]


def test_accept_queues_ignores_and_dedupes(db_url: str) -> None:
    store = Store(db_url)
    migrate_all(store)
    statuses = SQLQueue(store).enqueue_deliveries(
        [_delivery("a"), _delivery("b", handled=False), _delivery("a"), _delivery("c")]
    )
    assert statuses == ["queued", "ignored", "duplicate", "queued"]
    assert _accept(store, _delivery("b")) == "duplicate"
    jobs = _jobs(store)
    assert sorted(j["payload"]["delivery_id"] for j in jobs) == ["a", "c"]  # type: ignore[index]
    stored = store.get_delivery("a")
    assert stored is not None and stored.payload == b'{"action": "created"}'
    assert stored.installation_id == 7 and stored.repository == "octo/widgets"
    assert store.count_deliveries() == 3
    # The job carries what its log lines need without loading the delivery.
    assert jobs[0]["payload"] == {
        "delivery_id": "a",
        "event": "issue_comment",
        "repo": "octo/widgets",
        "installation_id": 7,
    }
    assert store.delivery_log_fields("c") == {
        "github_event": "issue_comment",
        "repo": "octo/widgets",
        "installation_id": 7,
    }
    assert store.delivery_log_fields("nope") is None
    store.dispose()


def test_dedupe_survives_a_restart(sqlite_url: str) -> None:
    first = Store(sqlite_url)
    migrate_all(first)
    assert _accept(first, _delivery("x")) == "queued"
    first.dispose()
    second = Store(sqlite_url)
    migrate_all(second)
    assert _accept(second, _delivery("x")) == "duplicate"
    assert len(_jobs(second)) == 1


def test_installations(db_url: str) -> None:
    store = Store(db_url)
    migrate_all(store)
    store.upsert_installation(1, "octo")
    store.add_repositories(1, ["octo/a", "octo/b"])
    store.add_repositories(1, ["octo/b"])
    store.remove_repositories(1, ["octo/a"])
    assert store.installation_repositories(1) == ["octo/b"]
    store.upsert_installation(1, "octo", suspended=True)
    installation = store.get_installation(1)
    assert installation is not None and installation.suspended
    store.delete_installation(1)
    assert store.get_installation(1) is None and store.installation_repositories(1) == []


def test_runs_ledger_and_audit(db_url: str) -> None:
    store = Store(db_url)
    migrate_all(store)
    store.record_run("r1", repo="octo/widgets", number=3, kind="fix")
    store.record_model_call(
        "r1",
        1,
        "claude-sonnet-4-5",
        input_tokens=10,
        output_tokens=5,
        cache_creation_input_tokens=100,
        cache_read_input_tokens=0,
        cost_usd=0.01,
        duration_ms=12.0,
    )
    store.update_run("r1", status="completed", input_tokens=10)
    run = store.get_run("r1")
    assert run is not None and run["status"] == "completed"
    assert [c["seq"] for c in store.model_calls("r1")] == [1]
    store.append_audit("comment.create", run_id="r1", actor="shipmate", target="octo/widgets#3")
    assert [a["action"] for a in store.audit_for_run("r1")] == ["comment.create"]


def test_payloads_are_stored_packed_and_read_back_byte_for_byte(db_url: str) -> None:
    from tests.conftest import WEBHOOK_FIXTURES

    body = (WEBHOOK_FIXTURES / "issue_comment" / "created.payload.json").read_bytes()
    store = Store(db_url)
    migrate_all(store)
    _accept(store, replace(_delivery("big"), payload=body))
    with store.engine.begin() as conn:
        stored = conn.execute(
            select(schema.deliveries.c.payload).where(schema.deliveries.c.delivery_id == "big")
        ).scalar_one()
        # A row from before packing: the JSON as it came.
        conn.execute(
            insert(schema.deliveries).values(
                delivery_id="old",
                event="ping",
                payload=b' {"zen": "x"}',
                status="handled",
                received_at=0.0,
            )
        )
    assert len(stored) < len(body) / 4 and zlib.decompress(stored) == body
    big, old = store.get_delivery("big"), store.get_delivery("old")
    assert big is not None and big.payload == body
    assert old is not None and old.payload == b' {"zen": "x"}'
    store.dispose()


def test_repair_attempts_and_refusals(db_url: str) -> None:
    store = Store(db_url)
    migrate_all(store)
    assert store.bump_repair_attempt("o/r", 5, "f1") == (1, 1)
    assert store.bump_repair_attempt("o/r", 5, "f1") == (2, 2)
    assert store.bump_repair_attempt("o/r", 5, "f2") == (1, 3)
    assert store.repair_attempts("o/r", 5, "f1") == (2, 3)
    # Once per delivery: its job run again counts nothing more, another delivery does.
    assert store.bump_repair_attempt("o/r", 5, "f1", delivery_id="d-1") == (3, 4)
    assert store.bump_repair_attempt("o/r", 5, "f1", delivery_id="d-1") == (3, 4)
    assert store.bump_repair_attempt("o/r", 5, "f2", delivery_id="d-1") == (2, 5)
    assert store.bump_repair_attempt("o/r", 5, "f1", delivery_id="d-2") == (4, 6)
    assert store.first_refusal("o/r", 5, "mallory") is True
    assert store.first_refusal("o/r", 5, "mallory") is False
    assert store.first_refusal("o/r", 6, "mallory") is True
    # The delivery that was first is first again (its job run again has yet to say it).
    assert store.first_refusal("o/r", 7, "*", delivery_id="d-1") is True
    assert store.first_refusal("o/r", 7, "*", delivery_id="d-1") is True
    assert store.first_refusal("o/r", 7, "*", delivery_id="d-2") is False
    assert store.first_refusal("o/r", 7, "*") is False


def test_config_checks_of_one_repository_at_once_keep_one_row(db_url: str) -> None:
    """Installation events have no lock: two workers may check one repository at once."""
    store = Store(db_url)
    migrate_all(store)
    verdicts = [None if n % 2 else f"line {n}: bad" for n in range(200)]

    def check(error: str | None) -> None:
        store.views.record_config_check("o/r", error)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(check, verdicts))
    (last,) = store.views.config_checks().values()
    assert last["error"] in verdicts
    store.views.record_config_check("o/r", None)
    assert store.views.config_checks()["o/r"]["error"] is None
    store.dispose()


def test_ping(sqlite_url: str, tmp_path: object) -> None:
    store = Store(sqlite_url)
    assert store.ping()
    broken = Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    assert not broken.ping()


def test_sqlite_writers_in_threads_queue_and_a_failed_transaction_frees_the_lock(
    sqlite_url: str,
) -> None:
    store = Store(sqlite_url)
    migrate_all(store)
    with contextlib.suppress(Exception), store.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO nowhere VALUES (1)")
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for n in range(40):
                _accept(store, _delivery(f"{name}-{n}"))
                assert store.get_delivery(f"{name}-{n}") is not None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "writers deadlocked"
    assert errors == []
    assert store.count_deliveries() == 160 and len(_jobs(store)) == 160
    store.dispose()


def test_fair_lock_is_handed_over_in_arrival_order_and_is_reentrant() -> None:
    lock = FairLock()
    order: list[str] = []
    lock.acquire()
    lock.acquire()  # reentrant

    def take(name: str) -> None:
        lock.acquire()
        order.append(name)
        lock.release()

    waiters = []
    for name in ("first", "second", "third"):
        thread = threading.Thread(target=take, args=(name,))
        thread.start()
        waiters.append(thread)
        deadline = time.monotonic() + 10
        while lock._next_ticket < len(waiters) + 1:  # it took its ticket and waits
            assert time.monotonic() < deadline
            time.sleep(0.001)
    lock.release()
    assert order == []  # still held once
    lock.release()
    for thread in waiters:
        thread.join(10)
    assert order == ["first", "second", "third"]
    with pytest.raises(RuntimeError):
        lock.release()


def test_a_fair_lock_on_a_file_excludes_every_other_holder_of_that_file(tmp_path: Path) -> None:
    """Two locks on one file stand for two processes (`flock` works per open file)."""
    mine, theirs = FairLock(tmp_path / "db.writer-lock"), FairLock(tmp_path / "db.writer-lock")
    mine.acquire()
    taken = threading.Event()

    def take() -> None:
        theirs.acquire()
        taken.set()
        theirs.release()

    thread = threading.Thread(target=take)
    thread.start()
    assert not taken.wait(0.2)  # the other holder waits as long as this one holds it
    mine.release()
    assert taken.wait(10)
    thread.join(10)
    mine.close()
    theirs.close()


def _accept_in_a_process(url: str, first: int, count: int) -> list[str]:
    store = Store(url)
    statuses = []
    for n in range(first, first + count, 5):
        statuses += SQLQueue(store).enqueue_deliveries(
            [_delivery(f"d{i}") for i in range(n, n + 5)]
        )
    store.dispose()
    return statuses


def test_writers_in_several_processes_store_each_delivery_once(sqlite_url: str) -> None:
    """`serve --workers N`: processes whose ids overlap; every id is queued exactly once."""
    store = Store(sqlite_url)
    migrate_all(store)
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(3) as pool:
        results = pool.starmap(_accept_in_a_process, [(sqlite_url, 0, 300)] * 3)
    assert sorted(s for r in results for s in r).count("queued") == 300
    assert all(len(r) == 300 for r in results)
    assert store.count_deliveries() == 300 and len(_jobs(store)) == 300
    store.dispose()


def test_closing_a_connection_mid_transaction_frees_the_write_lock(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    migrate_all(store)
    conn = store.engine.connect()
    conn.exec_driver_sql("SELECT 1")  # begins: holds the write lock
    closer = threading.Thread(target=conn.connection.dbapi_connection.close)  # type: ignore[union-attr]
    closer.start()
    closer.join(10)
    writer = threading.Thread(target=_accept, args=(store, _delivery("after")))
    writer.start()
    writer.join(10)
    assert not writer.is_alive(), "the write lock was never released"
    assert store.get_delivery("after") is not None
    conn.invalidate()
    store.dispose()


def test_the_intake_never_checkpoints_and_checkpoint_keeps_the_wal_bounded(
    sqlite_url: str,
) -> None:
    """The intake's commits leave the write-ahead log alone; `checkpoint` (run by `serve` off
    the event loop) copies it and, past the size given, starts it again from the top."""
    from pathlib import Path

    store = Store(sqlite_url)
    migrate_all(store)
    wal = Path(f"{store.engine.url.database}-wal")
    # Random text, which packing hardly shrinks.
    payload = b'{"pad": "' + base64.b64encode(random.randbytes(15_000)) + b'"}'

    def burst(start: int, count: int) -> None:
        for n in range(start, start + count):
            SQLQueue(store).enqueue_deliveries(
                [Delivery(f"d{n}", "ping", None, payload, handled=False, installation_id=None)]
            )

    burst(0, 300)  # ~1,500 pages: past SQLite's default autocheckpoint of 1,000
    grown = wal.stat().st_size
    assert grown > 5 * 1024 * 1024
    burst(300, 50)
    assert wal.stat().st_size > grown  # no checkpoint ran inside the intake's commits
    store.checkpoint(restart_above_bytes=1024 * 1024)
    before = wal.stat().st_size
    burst(350, 5)
    assert wal.stat().st_size == before  # restarted: new frames overwrite the log's start
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM deliveries").scalar() == 355
    store.dispose()


def _job_indexes(store: Store) -> dict[str, str]:
    """Name -> definition of each index on jobs."""
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            rows = conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'"
            )
        else:
            rows = conn.exec_driver_sql(
                "SELECT indexname, indexdef FROM pg_indexes"
                " WHERE tablename = 'jobs' AND schemaname = current_schema()"
            )
        return {name: sql or "" for name, sql in rows}


def test_migrate_indexes_only_the_jobs_that_have_a_lock(db_url: str) -> None:
    """A database of an earlier version (every job in the lock indexes) gets the partial
    queueing-lock index and the claim's (state, lock_key) index instead; migrating twice is
    harmless."""
    store = Store(db_url)
    migrate_all(store)
    with store.engine.begin() as conn:
        for name in ("ix_jobs_state_lock_key", "ix_jobs_queueing_lock_set"):
            conn.exec_driver_sql(f"DROP INDEX {name}")
        conn.exec_driver_sql("CREATE INDEX ix_jobs_lock_key ON jobs (lock_key)")
        conn.exec_driver_sql("CREATE INDEX ix_jobs_queueing_lock ON jobs (queueing_lock)")
        # That version kept no schema versions.
        conn.exec_driver_sql("DROP TABLE schema_versions")
    migrate_all(store)
    migrate_all(store)  # and again: nothing left to do
    indexes = _job_indexes(store)
    assert "ix_jobs_lock_key" not in indexes and "ix_jobs_queueing_lock" not in indexes
    assert "NOT NULL" in indexes["ix_jobs_queueing_lock_set"].upper()
    assert "ix_jobs_state_lock_key" in indexes
    store.dispose()


def test_migrate_from_version_1_replaces_the_lock_key_index(db_url: str) -> None:
    """Version 1 indexed lock_key where set; version 2 indexes (state, lock_key, run_at)."""
    store = Store(db_url)
    migrate_all(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_jobs_state_lock_key")
        conn.exec_driver_sql(
            "CREATE INDEX ix_jobs_lock_key_set ON jobs (lock_key) WHERE lock_key IS NOT NULL"
        )
        conn.exec_driver_sql("UPDATE schema_versions SET version = '1' WHERE part = 'queue'")
    migrate_all(store)
    indexes = _job_indexes(store)
    assert "ix_jobs_lock_key_set" not in indexes and "ix_jobs_state_lock_key" in indexes
    store.dispose()


def _accept(store: Store, delivery: Delivery) -> str:
    """One delivery through the queue's intake (it owns the transaction and the job rows)."""
    return SQLQueue(store).enqueue_deliveries([delivery])[0]
