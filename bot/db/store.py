"""The store: every table family on one engine, its schema and its maintenance.

The only room (with bot/jobs/) that speaks SQL: bot/db/engine.py makes the engine, and
deliveries.py, installations.py, runs.py, ledger.py and views.py hold the families of tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError

from bot.config import ConfigError, Settings
from bot.db import migrations, schema
from bot.db.deliveries import DeliveryTables
from bot.db.engine import FairLock, create_db_engine, writer_lock_path
from bot.db.held import HeldChanges
from bot.db.installations import InstallationTables
from bot.db.ledger import LedgerTables
from bot.db.migrations import SchemaPart
from bot.db.runs import RunTables
from bot.db.views import DashboardViews

# The version of our tables that this code reads and writes (see `Store.schema_part`).
SCHEMA_VERSION = "2"


def _append_only_ddl(dialect: str, table: str) -> list[str]:
    """Statements (idempotent) that make the database itself refuse UPDATE and DELETE on `table`."""
    message = f"{table} is append-only"
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            for verb in ("UPDATE", "DELETE")
        ]
    if dialect == "postgresql":
        return [
            # Concurrent migrations (several workers starting) wait for each other here.
            "SELECT pg_advisory_xact_lock(7316482)",
            f"CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{message}'; END $$",
            f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()",
            f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()",
        ]
    return []


def open_store(settings: Settings, *, migrate: bool = True) -> Store:
    """The store for start-up, migrated unless `migrate` is False (`serve` and `worker` check
    the schema's versions first: bot/jobs/backends.py). Raise `ConfigError` naming the
    setting at fault when the data dir cannot be created or the database cannot be used."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            "SHIPMATE_DATA_DIR", f"cannot create {settings.data_dir} ({exc.strerror})"
        ) from None
    url = make_url(settings.resolved_database_url)
    try:
        store = Store.from_settings(settings)
    except (ImportError, NoSuchModuleError) as exc:
        raise ConfigError(
            "SHIPMATE_DATABASE_URL",
            f"no driver for {url.drivername!r} ({exc}); "
            "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
        ) from None
    except OSError as exc:
        raise ConfigError(
            "SHIPMATE_DATABASE_URL", f"cannot create the folder of {url.database} ({exc.strerror})"
        ) from None
    try:
        if migrate:
            store.migrate()
        else:
            with store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        store.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        where = url.render_as_string(hide_password=True)
        raise ConfigError(
            "SHIPMATE_DATABASE_URL", f"cannot use the database at {where} ({reason})"
        ) from None
    return store


class Store(DeliveryTables, InstallationTables, RunTables):
    """Tables and their data access. Blocking: call from a thread in async code."""

    def __init__(self, url: str, *, job_max_attempts: int = 5) -> None:
        self.url = url
        self.job_max_attempts = job_max_attempts
        self.write_lock = FairLock(writer_lock_path(url))
        super().__init__(create_db_engine(url, self.write_lock))
        self._intake: Any = None
        self._probe: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(settings.resolved_database_url, job_max_attempts=settings.job_max_attempts)

    def schema_part(self) -> SchemaPart:
        """Our tables as one part of the schema (`bot/db/migrations.py`)."""
        return SchemaPart("shipmate", SCHEMA_VERSION, self._apply_schema)

    def _apply_schema(self, conn: Connection, recorded: str | None) -> None:
        # Version 1 is every table as of the first versioned Shipmate: on a database of an
        # unversioned one (recorded None, tables there) this adds what it lacks. Version 2 adds
        # held_changes: create_all makes the tables a database lacks, and only those.
        schema.metadata.create_all(conn)
        for statement in _append_only_ddl(self.dialect, schema.audit_log.name):
            conn.exec_driver_sql(statement)

    def migrate(self) -> None:
        """Bring our tables to SCHEMA_VERSION (the queue migrates its own)."""
        migrations.migrate(self.engine, [self.schema_part()])

    def dispose(self) -> None:
        for raw in (self._intake, self._probe):
            if raw is not None:
                raw.close()
        self._intake = self._probe = None
        self.engine.dispose()
        self.write_lock.close()

    def checkpoint(self, restart_above_bytes: int = 16 * 1024 * 1024) -> None:
        """Copy SQLite's write-ahead log into the database file. The intake's own connection
        never checkpoints inside a commit (that stalled replies), so `serve` calls this from a
        thread every second: PASSIVE, which writers don't wait for; and once the log passes
        `restart_above_bytes` (steady traffic never leaves it fully copied, so it would keep
        growing), RESTART under the write lock, so the next commit starts it from the top."""
        if self.dialect != "sqlite":
            return
        raw: Any = self.engine.raw_connection()  # outside a transaction, where SQLite allows it
        try:
            connection = raw.dbapi_connection
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            wal = Path(f"{self.engine.url.database}-wal")
            if wal.exists() and wal.stat().st_size > restart_above_bytes:
                self.write_lock.acquire()
                try:
                    connection.execute("PRAGMA wal_checkpoint(RESTART)")
                finally:
                    self.write_lock.release()
        finally:
            raw.close()

    def intake_connection(self) -> Any:
        """The SQLite connection the intake keeps for itself: its transactions skip the pool
        and SQLAlchemy's per-transaction work (this is most of a delivery's cost), and it never
        runs a checkpoint inside its commits."""
        if self._intake is None:
            self._intake = self.engine.raw_connection()
            self._intake.dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
        return self._intake.dbapi_connection

    def deliveries_stored(self) -> int:
        """How many deliveries this SQLite database has had, stored by any process on it (the
        highest rowid, one index lookup; retention deletes the oldest rows only): a running
        count to take a rate from. Read on a connection of its own, in autocommit: no
        transaction, so no writer lock to wait for."""
        if self._probe is None:
            self._probe = self.engine.raw_connection()
        row = self._probe.dbapi_connection.execute("SELECT max(rowid) FROM deliveries").fetchone()
        return int(row[0] or 0)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    @property
    def views(self) -> DashboardViews:
        """What the dashboard reads (bot/db/views.py)."""
        return DashboardViews(self.engine)

    @property
    def held(self) -> HeldChanges:
        """Changes held back for their size (bot/db/held.py)."""
        return HeldChanges(self.engine)

    @property
    def ledger(self) -> LedgerTables:
        """CI jobs, pull request activity and monthly spend (bot/db/ledger.py)."""
        return LedgerTables(self.engine)
