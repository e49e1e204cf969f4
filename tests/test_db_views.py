"""The dashboard's read models of deliveries and the store's row readers (bot/db/engine.py):
rows as dicts, newest first, narrowed to what the viewer may see."""

from __future__ import annotations

from sqlalchemy import insert, select

from bot.db import schema
from bot.db.engine import fetch_row, in_period, rows_where
from bot.db.store import Store
from tests.dbs import migrate_all


def test_deliveries_are_listed_newest_first_without_their_payload(db_url: str) -> None:
    store = Store(db_url)
    migrate_all(store)
    with store.engine.begin() as conn:
        for at, (delivery_id, repository) in enumerate(
            (("a", "octo/one"), ("b", "octo/two"), ("c", "octo/one"))
        ):
            conn.execute(
                insert(schema.deliveries).values(
                    delivery_id=delivery_id,
                    event="issues",
                    repository=repository,
                    payload=b"{}",
                    status="handled",
                    received_at=float(at),
                )
            )
    views = store.views
    listed = views.deliveries(None)
    assert [row["delivery_id"] for row in listed] == ["c", "b", "a"]
    assert all("payload" not in row for row in listed)
    assert [row["delivery_id"] for row in views.deliveries(["octo/one"], limit=1)] == ["c"]
    one = views.delivery("b", None)
    assert one is not None and one["repository"] == "octo/two" and "payload" not in one
    assert views.delivery("b", ["octo/one"]) is None
    assert views.delivery("missing", None) is None


def test_row_readers(db_url: str) -> None:
    store = Store(db_url)
    migrate_all(store)
    for run_id, number, at in (("r1", 1, 30.0), ("r2", 2, 10.0), ("r3", 1, 20.0)):
        store.record_run(run_id, repo="octo/one", number=number, created_at=at)
    runs = schema.runs
    ordered = rows_where(store.engine, runs, order_by="created_at", repo="octo/one", number=1)
    assert [row["id"] for row in ordered] == ["r3", "r1"]
    assert rows_where(store.engine, runs, repo="octo/two") == []
    found = fetch_row(store.engine, select(runs).where(runs.c.id == "r2"))
    assert found is not None and found["number"] == 2
    assert fetch_row(store.engine, select(runs).where(runs.c.id == "none")) is None
    period = in_period(select(runs.c.id), runs.c.created_at, 10.0, 30.0)
    with store.engine.connect() as conn:
        assert sorted(conn.execute(period).scalars()) == ["r2", "r3"]
    ledger = store.ledger
    assert [row["id"] for row in ledger.runs_since(None, 10.0, 30.0)] == ["r2", "r3"]
    assert [row["id"] for row in ledger.runs_since("octo/two", 0.0)] == []
    assert [row["id"] for row in ledger.runs_of_branch("octo/one", "none")] == []
