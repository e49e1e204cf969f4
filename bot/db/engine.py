"""Engines for the store: SQLite tuned for one host (WAL, synchronous=NORMAL: a commit survives
a killed process, which is what the intake promises; writers take turns through a fair lock),
PostgreSQL for several; and the base the store's table families share."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Record = TypeVar("Record", bound="DataclassInstance")


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
        self._ending(super().commit)

    def rollback(self) -> None:
        self._ending(super().rollback)

    def close(self) -> None:
        self._ending(super().close)

    def _ending(self, end: Callable[[], None]) -> None:
        """End the transaction with `end`, and hand the lock on whether or not it fails."""
        try:
            end()
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


def fetch_rows(engine: Engine, query: Any) -> list[dict[str, Any]]:
    """The rows of a SELECT, each as a dict of its columns."""
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def fetch_row(engine: Engine, query: Any) -> dict[str, Any] | None:
    """The first row of a SELECT as a dict of its columns, or None."""
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else dict(row._mapping)


def record_of(kind: type[Record], row: Any, **converted: Any) -> Record:
    """The dataclass `kind` of a selected `row`: each field the column of its name, but the
    fields `converted` gives (a column stored packed)."""
    columns = row._mapping
    found = {f.name: columns[f.name] for f in fields(kind) if f.name not in converted}
    return kind(**found, **converted)


def rows_where(
    engine: Engine, table: Any, *, order_by: str | None = None, **equal: Any
) -> list[dict[str, Any]]:
    """The rows of `table` whose columns equal the values given (`repo=..., number=...`), in
    the order of column `order_by`."""
    query = select(table).where(*(table.c[name] == value for name, value in equal.items()))
    return fetch_rows(engine, query if order_by is None else query.order_by(table.c[order_by]))


def in_period(query: Any, at: Any, since: float, until: float | None) -> Any:
    """`query` narrowed to rows whose time column `at` falls in [since, until)."""
    query = query.where(at >= since)
    return query if until is None else query.where(at < until)


def insert_on_conflict(dialect: str, table: Any) -> Any:
    """An INSERT that can say ON CONFLICT DO NOTHING (or DO UPDATE) on either database."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class TableAccess:
    """What each family of tables reads and writes through: the store's (deliveries,
    installations, runs) as its bases, and the held changes, ledger and dashboard views on the
    store's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def _insert(self, table: Any) -> Any:
        return insert_on_conflict(self.dialect, table)
