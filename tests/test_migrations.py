"""Schema versions on SQLite: a fresh file is migrated at start, an older one too (it is this
host's alone), a newer one is refused; `shipmate migrate` reports what it applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from bot.db import migrations
from bot.db.migrations import SchemaNotReady, SchemaPart, version_key
from bot.jobs.backends import migrate_command, open_database
from bot.jobs.sql import SQLQueue


def _settings(tmp_path: Path) -> Settings:
    return Settings.load(data_dir=tmp_path / "data")


def test_a_fresh_sqlite_file_is_migrated_at_start(tmp_path: Path) -> None:
    store, queue = open_database(_settings(tmp_path))
    assert isinstance(queue, SQLQueue)
    with store.engine.connect() as conn:
        assert migrations.recorded_versions(conn) == {"shipmate": "2", "queue": "2"}
    assert queue.enqueue("run", {}) is not None
    store.dispose()


def test_a_newer_sqlite_database_is_refused(tmp_path: Path) -> None:
    store, _ = open_database(_settings(tmp_path))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE schema_versions SET version = '3' WHERE part = 'queue'")
    store.dispose()
    with pytest.raises(SchemaNotReady, match=r"queue schema is version 3, newer .* upgrade"):
        open_database(_settings(tmp_path))


def test_migrate_applies_each_part_once_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path)
    assert migrate_command(settings) == 0
    assert "shipmate none -> 2, queue none -> 2" in capsys.readouterr().out
    store, _ = open_database(settings)
    calls: list[str | None] = []
    part = SchemaPart("extra", "1.10", lambda conn, recorded: calls.append(recorded))
    assert migrations.migrate(store.engine, [part]) == ["extra none -> 1.10"]
    assert migrations.migrate(store.engine, [part]) == []
    newer = SchemaPart("extra", "1.9", lambda conn, recorded: calls.append(recorded))
    with pytest.raises(SchemaNotReady):  # 1.10 is newer than 1.9
        migrations.migrate(store.engine, [newer])
    assert calls == [None]
    store.dispose()


def test_versions_compare_as_numbers() -> None:
    assert version_key("3.10.0") > version_key("3.9.1") > version_key("3")


def test_a_version_1_database_gains_the_held_changes_table(tmp_path: Path) -> None:
    store, _ = open_database(_settings(tmp_path))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE held_changes")
        conn.exec_driver_sql("UPDATE schema_versions SET version = '1' WHERE part = 'shipmate'")
    store.dispose()
    store, _ = open_database(_settings(tmp_path))  # SQLite: migrated at start
    with store.engine.connect() as conn:
        assert migrations.recorded_versions(conn)["shipmate"] == "2"
    patch = b"diff --git a/x b/x\n" + bytes(range(256))
    store.held.hold(
        "r1", repo="o/r", number=3, base_sha="a" * 40, tree="b" * 40, patch=patch, detail={}
    )
    held = store.held.get("r1")
    assert held is not None and held.patch == patch and held.published_at is None
    assert store.held.mark_published("r1", "alice") and not store.held.mark_published("r1", "bob")
    published = store.held.get("r1")
    assert published is not None and published.published_at is not None
    store.dispose()
