"""Data access: deliveries, installations, runs, the ledger and the audit trail.

The only module (with bot/jobs/queue.py) that speaks SQL. SQLite is tuned for a single host (WAL,
synchronous=NORMAL: a commit survives a killed process, which is what the intake promises);
PostgreSQL serves several hosts.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from isal import isal_zlib
from sqlalchemy import Engine, create_engine, delete, event, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError

from bot.config import ConfigError, Settings
from bot.db import migrations, schema
from bot.db.held import HeldChanges
from bot.db.ledger import LedgerTables
from bot.db.migrations import SchemaPart
from bot.db.views import DashboardViews

DeliveryStatus = Literal["queued", "duplicate", "ignored"]
# The version of our tables that this code reads and writes (see `Store.schema_part`).
SCHEMA_VERSION = "2"


def pack_payload(payload: bytes) -> bytes:
    """A delivery's JSON as stored: a zlib stream (RFC 1950) written by ISA-L at its fastest
    level, about 10 us and a fifth of the size for a 15 KB delivery. The intake's commit
    then writes a fifth of the bytes to the WAL, and the checkpoint copies a fifth of them to
    the database, where each was the largest cost of a delivery. Any zlib reads it back."""
    return isal_zlib.compress(payload, 0)


def unpack_payload(stored: bytes) -> bytes:
    """The JSON back, byte for byte. A zlib stream starts with "x" (0x78); JSON text never
    does, so payloads stored as they came (before packing) are returned as they are."""
    return zlib.decompress(stored) if stored[:1] == b"x" else stored


@dataclass(frozen=True)
class Delivery:
    """One verified webhook delivery, as the intake hands it over."""

    delivery_id: str
    event: str
    action: str | None
    payload: bytes
    handled: bool
    installation_id: int | None = None
    repository: str | None = None
    # The issue or pull request it is about, when it names one.
    number: int | None = None
    # The verified signature of the body; a body already accepted is a duplicate (a replay).
    digest: str | None = None

    @property
    def lock_key(self) -> str | None:
        """The lock of its job: the deliveries of one issue or PR are handled one at a time,
        in order (a `fix` then a `stop`, a label added then removed). Not the run's lock
        (`bot/runs/`): a `stop` must not wait for the run it stops."""
        if self.repository is None or self.number is None:
            return None
        return f"delivery:{self.repository}#{self.number}"


@dataclass(frozen=True)
class StoredDelivery:
    delivery_id: str
    event: str
    action: str | None
    payload: bytes
    installation_id: int | None
    repository: str | None
    status: str
    error: str | None
    received_at: float


@dataclass(frozen=True)
class Installation:
    id: int
    account: str
    suspended: bool


# A delivery ready to insert: the delivery, its status, its packed payload.
PreparedDelivery = tuple[Delivery, DeliveryStatus, bytes]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE: writers queue on the lock at the start
    # of a transaction instead of failing half-way with "database is locked".
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class FairLock:
    """A reentrant lock handed over in arrival order (`threading.RLock` lets a releasing thread
    take it straight back, so busy threads can starve another).

    With `path`, the holder also holds an exclusive `flock` on that file, so the writers of
    every process on the database (`serve --workers N`, `shipmate worker`) take turns too, and
    a waiting process wakes as soon as the lock is free. Without it they would meet only at
    SQLite's lock, whose busy handler sleeps 1, 2, 5... ms between tries, and an intake waiting
    there blocks its event loop for that long."""

    def __init__(self, path: Path | None = None) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0
        self._owner: int | None = None
        self._depth = 0
        self._path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._changed:
            if self._owner == me:
                self._depth += 1
                return
            ticket = self._next_ticket
            self._next_ticket += 1
            while self._serving != ticket:
                self._changed.wait()
            self._owner, self._depth = me, 1
        if self._path is not None:
            try:
                fcntl.flock(self._file(), fcntl.LOCK_EX)
            except BaseException:
                self._hand_over()
                raise

    def release(self, owner: int | None = None) -> None:
        """Release once for `owner` (default: this thread), e.g. when another thread closes a
        connection whose transaction holds the lock."""
        with self._changed:
            if self._owner != (owner if owner is not None else threading.get_ident()):
                raise RuntimeError("release of a FairLock this thread does not hold")
            self._depth -= 1
            if self._depth > 0:
                return
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._hand_over()

    def _hand_over(self) -> None:
        with self._changed:
            self._owner, self._depth = None, 0
            self._serving += 1
            self._changed.notify_all()

    def close(self) -> None:
        """Close the lock file (an open one is kept for the next transaction)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _file(self) -> int:
        if self._fd is None:
            assert self._path is not None
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd


class _WriteLockedConnection(sqlite3.Connection):
    """A sqlite3 connection whose transactions also hold a lock shared by the engine's
    connections. The threads of one process (the intake's commits on the event loop, the
    in-process worker's) then take turns in arrival order. Without it they all poll SQLite's
    busy handler, whose sleeps grow to 100 ms, and busy worker threads can keep winning, which
    held the intake's commits back for hundreds of milliseconds. Other processes still meet
    SQLite's own lock and busy timeout."""

    write_lock: FairLock
    _lock_owner: int | None = None

    def begin_immediate(self) -> None:
        self.write_lock.acquire()
        self._lock_owner = threading.get_ident()
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._release()
            raise

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()

    def _release(self) -> None:
        owner, self._lock_owner = self._lock_owner, None
        if owner is not None:
            self.write_lock.release(owner)


def _write_locked_factory(lock: FairLock) -> type[_WriteLockedConnection]:
    return type("WriteLockedConnection", (_WriteLockedConnection,), {"write_lock": lock})


def writer_lock_path(url: str) -> Path | None:
    """The file whose `flock` the writers of every process on this SQLite database share."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(f"{parsed.database}.writer-lock")


def _sqlite_begin(connection: Connection) -> None:
    dbapi_connection: Any = connection.connection.dbapi_connection
    if isinstance(dbapi_connection, _WriteLockedConnection):
        dbapi_connection.begin_immediate()
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_db_engine(url: str, write_lock: FairLock | None = None) -> Engine:
    """An engine for `url`; SQLite files get their folder created, the pragmas above, and
    `write_lock` (default: a new one on `writer_lock_path(url)`) around every transaction."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        lock_path = writer_lock_path(url)
        if lock_path is not None:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
        factory = _write_locked_factory(write_lock or FairLock(lock_path))
        engine = create_engine(url, connect_args={"check_same_thread": False, "factory": factory})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


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


class Store:
    """Tables and their data access. Blocking: call from a thread in async code."""

    def __init__(self, url: str, *, job_max_attempts: int = 5) -> None:
        self.url = url
        self.job_max_attempts = job_max_attempts
        self.write_lock = FairLock(writer_lock_path(url))
        self.engine = create_db_engine(url, self.write_lock)
        self.dialect = self.engine.dialect.name
        self._intake: Any = None

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
        if self._intake is not None:
            self._intake.close()
            self._intake = None
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

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def _insert(self, table: Any) -> Any:
        """An INSERT that can say ON CONFLICT DO NOTHING on either database."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # Deliveries ----------------------------------------------------------------------------

    def prepare_deliveries(
        self, batch: Sequence[Delivery]
    ) -> tuple[list[DeliveryStatus], list[PreparedDelivery]]:
        """Each delivery's status as far as the batch tells (a repeat within it is a
        duplicate), and the rows to insert, their payloads packed here, before the
        transaction, so the write lock is held no longer. The queue's `enqueue_deliveries`
        inserts them with its jobs in ONE transaction, and `settle_statuses` says which were
        duplicates of stored ones."""
        statuses: list[DeliveryStatus] = []
        seen: set[str] = set()
        rows: list[PreparedDelivery] = []
        for delivery in batch:
            if delivery.delivery_id in seen:
                statuses.append("duplicate")
                continue
            seen.add(delivery.delivery_id)
            status: DeliveryStatus = "queued" if delivery.handled else "ignored"
            rows.append((delivery, status, pack_payload(delivery.payload)))
            statuses.append(status)
        return statuses, rows

    @staticmethod
    def settle_statuses(
        statuses: list[DeliveryStatus], inserted: list[bool]
    ) -> list[DeliveryStatus]:
        """`statuses` with each row the database already had (not inserted) a duplicate."""
        settled = list(statuses)
        accepted = iter(inserted)
        for index, status in enumerate(settled):
            if status != "duplicate" and not next(accepted):
                settled[index] = "duplicate"
        return settled

    @staticmethod
    def webhook_job_payload(delivery: Delivery) -> dict[str, Any]:
        """A delivery's job: what every log line of the job carries, known without loading
        the delivery."""
        return {
            "delivery_id": delivery.delivery_id,
            "event": delivery.event,
            "repo": delivery.repository,
            "installation_id": delivery.installation_id,
        }

    def insert_deliveries(
        self, conn: Connection, rows: Sequence[PreparedDelivery], now: float
    ) -> list[bool]:
        """Insert `rows` in the caller's transaction; True for each one that was new."""
        insert_delivery = (
            self._insert(schema.deliveries)
            .on_conflict_do_nothing(index_elements=["delivery_id"])
            .returning(schema.deliveries.c.delivery_id)
        )
        insert_digest = (
            self._insert(schema.delivery_digests)
            .on_conflict_do_nothing(index_elements=["digest"])
            .returning(schema.delivery_digests.c.digest)
        )
        inserted: list[bool] = []
        for delivery, status, payload in rows:
            if delivery.digest is not None:
                fresh_body = conn.execute(
                    insert_digest,
                    {"digest": delivery.digest, "delivery_id": delivery.delivery_id},
                ).first()
                if fresh_body is None:
                    inserted.append(False)
                    continue
            row = conn.execute(
                insert_delivery,
                {
                    "delivery_id": delivery.delivery_id,
                    "event": delivery.event,
                    "action": delivery.action,
                    "installation_id": delivery.installation_id,
                    "repository": delivery.repository,
                    "payload": payload,
                    "status": status,
                    "received_at": now,
                },
            ).first()
            inserted.append(row is not None)
        return inserted

    @staticmethod
    def insert_deliveries_sqlite(
        cursor: sqlite3.Cursor, rows: Sequence[PreparedDelivery], now: float
    ) -> list[bool]:
        """`insert_deliveries` on the intake's own SQLite connection (`intake_connection`),
        skipping SQLAlchemy's per-statement overhead: the intake's hot path."""
        inserted: list[bool] = []
        for delivery, status, payload in rows:
            if delivery.digest is not None:
                cursor.execute(
                    "INSERT INTO delivery_digests (digest, delivery_id) VALUES (?, ?)"
                    " ON CONFLICT (digest) DO NOTHING RETURNING digest",
                    (delivery.digest, delivery.delivery_id),
                )
                if cursor.fetchone() is None:
                    inserted.append(False)
                    continue
            cursor.execute(
                "INSERT INTO deliveries (delivery_id, event, action, installation_id,"
                " repository, payload, status, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id",
                (
                    delivery.delivery_id,
                    delivery.event,
                    delivery.action,
                    delivery.installation_id,
                    delivery.repository,
                    payload,
                    status,
                    now,
                ),
            )
            inserted.append(cursor.fetchone() is not None)
        return inserted

    def get_delivery(self, delivery_id: str) -> StoredDelivery | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(schema.deliveries).where(schema.deliveries.c.delivery_id == delivery_id)
            ).first()
        if row is None:
            return None
        return StoredDelivery(
            delivery_id=row.delivery_id,
            event=row.event,
            action=row.action,
            payload=unpack_payload(bytes(row.payload)),
            installation_id=row.installation_id,
            repository=row.repository,
            status=row.status,
            error=row.error,
            received_at=row.received_at,
        )

    def delivery_log_fields(self, delivery_id: str) -> dict[str, Any] | None:
        """The fields every log line about this delivery carries (see bot/logs.py)."""
        table = schema.deliveries
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table.c.event, table.c.repository, table.c.installation_id).where(
                    table.c.delivery_id == delivery_id
                )
            ).first()
        if row is None:
            return None
        return {
            "github_event": row.event,
            "repo": row.repository,
            "installation_id": row.installation_id,
        }

    def set_delivery_status(self, delivery_id: str, status: str, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(schema.deliveries)
                .where(schema.deliveries.c.delivery_id == delivery_id)
                .values(status=status, error=error)
            )

    def count_deliveries(self, status: str | None = None) -> int:
        query = select(func.count()).select_from(schema.deliveries)
        if status is not None:
            query = query.where(schema.deliveries.c.status == status)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def delete_deliveries_before(self, cutoff: float) -> int:
        """Retention: deliveries received before `cutoff` whose job is over (any status but
        queued)."""
        table = schema.deliveries
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(table).where(table.c.received_at < cutoff, table.c.status != "queued")
            )
            return int(result.rowcount)

    # Installations -------------------------------------------------------------------------

    def upsert_installation(
        self, installation_id: int, account: str, *, suspended: bool = False
    ) -> None:
        now = time.time()
        stmt = self._insert(schema.installations).values(
            id=installation_id,
            account=account,
            suspended=suspended,
            created_at=now,
            updated_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"account": account, "suspended": suspended, "updated_at": now},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def delete_installation(self, installation_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(schema.installation_repositories).where(
                    schema.installation_repositories.c.installation_id == installation_id
                )
            )
            conn.execute(
                delete(schema.installations).where(schema.installations.c.id == installation_id)
            )

    def get_installation(self, installation_id: int) -> Installation | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(schema.installations).where(schema.installations.c.id == installation_id)
            ).first()
        return None if row is None else Installation(row.id, row.account, bool(row.suspended))

    def add_repositories(self, installation_id: int, full_names: Sequence[str]) -> None:
        if not full_names:
            return
        stmt = self._insert(schema.installation_repositories).on_conflict_do_nothing()
        with self.engine.begin() as conn:
            conn.execute(
                stmt, [{"installation_id": installation_id, "full_name": n} for n in full_names]
            )

    def remove_repositories(self, installation_id: int, full_names: Sequence[str]) -> None:
        table = schema.installation_repositories
        with self.engine.begin() as conn:
            conn.execute(
                delete(table).where(
                    table.c.installation_id == installation_id,
                    table.c.full_name.in_(list(full_names)),
                )
            )

    def installation_repositories(self, installation_id: int) -> list[str]:
        table = schema.installation_repositories
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.full_name)
                .where(table.c.installation_id == installation_id)
                .order_by(table.c.full_name)
            )
            return [row.full_name for row in rows]

    # Runs and the ledger -------------------------------------------------------------------

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

    def record_run(self, run_id: str, **values: Any) -> None:
        values.setdefault("created_at", time.time())
        values.setdefault("status", "running")
        values.setdefault("kind", "fix")
        with self.engine.begin() as conn:
            conn.execute(insert(schema.runs).values(id=run_id, **values))

    def update_run(self, run_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(schema.runs).where(schema.runs.c.id == run_id).values(**values))

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.runs).where(schema.runs.c.id == run_id)).first()
        return None if row is None else dict(row._mapping)

    def runs_for(self, repo: str, number: int) -> list[dict[str, Any]]:
        table = schema.runs
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table)
                .where(table.c.repo == repo, table.c.number == number)
                .order_by(table.c.created_at)
            )
            return [dict(row._mapping) for row in rows]

    def record_model_call(self, run_id: str, seq: int, model: str, **values: Any) -> None:
        values.setdefault("created_at", time.time())
        with self.engine.begin() as conn:
            conn.execute(
                insert(schema.model_calls).values(run_id=run_id, seq=seq, model=model, **values)
            )

    def model_calls(self, run_id: str) -> list[dict[str, Any]]:
        table = schema.model_calls
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).where(table.c.run_id == run_id).order_by(table.c.seq))
            return [dict(row._mapping) for row in rows]

    # Audit ---------------------------------------------------------------------------------

    def append_audit(
        self,
        action: str,
        *,
        run_id: str | None = None,
        delivery_id: str | None = None,
        actor: str | None = None,
        target: str | None = None,
        detail: Mapping[str, Any] | None = None,
        at: float | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(schema.audit_log).values(
                    at=at if at is not None else time.time(),
                    run_id=run_id,
                    delivery_id=delivery_id,
                    actor=actor,
                    action=action,
                    target=target,
                    detail=dict(detail or {}),
                )
            )

    def audit_for_run(self, run_id: str) -> list[dict[str, Any]]:
        """Every audit row of a run (GitHub actions and egress), in time order."""
        table = schema.audit_log
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table).where(table.c.run_id == run_id).order_by(table.c.at, table.c.id)
            )
            return [dict(row._mapping) for row in rows]

    def append_egress(
        self,
        *,
        task_id: str,
        host: str,
        port: int,
        method: str,
        bytes_out: int,
        bytes_in: int,
        allowed: bool,
        reason: str,
        at: float | None = None,
        delivery_id: str | None = None,
        command: str | None = None,
    ) -> None:
        """One egress request of a sandbox, as an audit row of its run (with the command that
        made it, when known; never a header or a body)."""
        self.append_audit(
            "egress.allowed" if allowed else "egress.denied",
            run_id=task_id,
            delivery_id=delivery_id,
            actor="sandbox",
            target=f"{host}:{port}",
            detail={
                "method": method,
                "bytes_out": bytes_out,
                "bytes_in": bytes_in,
                "reason": reason,
                "command": command,
            },
            at=at,
        )

    def egress_for_task(self, task_id: str) -> list[dict[str, Any]]:
        """The egress rows of a run, unpacked: host, port, method, bytes, allowed, reason."""
        found = []
        for row in self.audit_for_run(task_id):
            if not str(row["action"]).startswith("egress."):
                continue
            host, _, port = str(row["target"]).rpartition(":")
            detail = row["detail"] or {}
            found.append(
                {
                    "at": row["at"],
                    "task_id": task_id,
                    "host": host,
                    "port": int(port),
                    "allowed": row["action"] == "egress.allowed",
                    **{
                        k: detail.get(k)
                        for k in ("method", "bytes_out", "bytes_in", "reason", "command")
                    },
                }
            )
        return found

    # Repair caps and refusals --------------------------------------------------------------

    def bump_repair_attempt(self, repo: str, number: int, fingerprint: str) -> tuple[int, int]:
        """Count one more repair of this failure; return (attempts of it, attempts on the PR)."""
        table = schema.repair_attempts
        stmt = (
            self._insert(table)
            .values(repo=repo, number=number, fingerprint=fingerprint, count=1)
            .on_conflict_do_update(
                index_elements=["repo", "number", "fingerprint"], set_={"count": table.c.count + 1}
            )
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
            return self._attempts(conn, repo, number, fingerprint)

    def repair_attempts(self, repo: str, number: int, fingerprint: str) -> tuple[int, int]:
        with self.engine.connect() as conn:
            return self._attempts(conn, repo, number, fingerprint)

    @staticmethod
    def _attempts(conn: Connection, repo: str, number: int, fingerprint: str) -> tuple[int, int]:
        """(attempts at this failure, attempts on the whole PR)."""
        table = schema.repair_attempts
        on_pr = (table.c.repo == repo, table.c.number == number)
        mine = conn.execute(
            select(table.c.count).where(*on_pr, table.c.fingerprint == fingerprint)
        ).scalar()
        total = conn.execute(
            select(func.coalesce(func.sum(table.c.count), 0)).where(*on_pr)
        ).scalar_one()
        return int(mine or 0), int(total)

    def first_refusal(self, repo: str, number: int, login: str) -> bool:
        """Record a refusal; True only the first time for this thread and user."""
        stmt = (
            self._insert(schema.refusals)
            .values(repo=repo, number=number, login=login, at=time.time())
            .on_conflict_do_nothing()
            .returning(schema.refusals.c.login)
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).first() is not None
