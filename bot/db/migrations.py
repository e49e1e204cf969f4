"""Schema versions: what `shipmate migrate` applies, and what `serve` and `worker` check first.

The database holds parts with owners of their own: Shipmate's tables (the store's), and the
queue's (the SQL queue's jobs table, or procrastinate's schema). Each part records the version
it was last migrated to in `schema_versions`, so a process can tell, before it touches a row,
whether the database is the one its code expects: older (run `shipmate migrate`), newer (a
newer Shipmate migrated it; this one must not write to it), or just right.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, MetaData, inspect, select
from sqlalchemy.engine import Connection

from bot.config import StartupError
from bot.db.columns import table

# Every part's version. Owned by no part: in a MetaData of its own, made by `migrate` first.
schema_versions = table(
    "schema_versions",
    MetaData(),
    """
    part        String(100)  primary key
    version     String(50)   not null
    applied_at  Float        not null
    """,
)

# Taken by every migration on PostgreSQL: two `shipmate migrate` at once apply it once.
MIGRATION_LOCK = 7316481


@dataclass(frozen=True)
class SchemaPart:
    """One owner's tables. `apply(conn, recorded)` brings them from `recorded` (None: never
    migrated, though tables of an unversioned Shipmate may exist) to `version`, idempotently."""

    name: str
    version: str
    apply: Callable[[Connection, str | None], None]


class SchemaNotReady(StartupError):
    """The database is not at the version this code needs. `str()` is one line saying what to
    run."""


def version_key(version: str) -> tuple[int, ...]:
    """ "3.10.0" -> (3, 10, 0), so that 3.10 sorts after 3.9."""
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def recorded_versions(conn: Connection) -> dict[str, str]:
    if not inspect(conn).has_table(schema_versions.name):
        return {}
    rows = conn.execute(select(schema_versions.c.part, schema_versions.c.version))
    return {part: version for part, version in rows}


@dataclass(frozen=True)
class Problem:
    """What is wrong with a database's schema: "behind" (run `shipmate migrate`) or "newer"
    (migrated by a newer Shipmate), and the one line that says so."""

    kind: str
    message: str


def check(engine: Engine, parts: Sequence[SchemaPart]) -> Problem | None:
    """None when every part is at its version."""
    with engine.connect() as conn:
        found = recorded_versions(conn)
    for part in parts:
        recorded = found.get(part.name)
        if recorded is not None and version_key(recorded) > version_key(part.version):
            return Problem("newer", _newer(part, recorded))
    behind = [
        f"{part.name} {found.get(part.name) or 'none'} -> {part.version}"
        for part in parts
        if found.get(part.name) is None or version_key(found[part.name]) < version_key(part.version)
    ]
    if behind:
        message = f"the database is not migrated ({', '.join(behind)}): run `shipmate migrate`"
        return Problem("behind", message)
    return None


def migrate(engine: Engine, parts: Sequence[SchemaPart]) -> list[str]:
    """Bring every part to its version, in one transaction (PostgreSQL and SQLite both roll
    DDL back), under a lock; return what was applied, e.g. ["shipmate none -> 1"]. A database
    newer than this code raises `SchemaNotReady`: downgrades are not a thing we do."""
    applied: list[str] = []
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        schema_versions.create(conn, checkfirst=True)
        found = recorded_versions(conn)
        for part in parts:
            recorded = found.get(part.name)
            if recorded is not None and version_key(recorded) > version_key(part.version):
                raise SchemaNotReady(_newer(part, recorded))
            if recorded is not None and version_key(recorded) == version_key(part.version):
                continue
            part.apply(conn, recorded)
            _record(conn, part, exists=recorded is not None)
            applied.append(f"{part.name} {recorded or 'none'} -> {part.version}")
    return applied


def _newer(part: SchemaPart, recorded: str) -> str:
    return (
        f"the database's {part.name} schema is version {recorded}, newer than this "
        f"Shipmate's {part.version}: upgrade Shipmate before starting it"
    )


def _record(conn: Connection, part: SchemaPart, *, exists: bool) -> None:
    values = {"version": part.version, "applied_at": time.time()}
    if exists:
        conn.execute(
            schema_versions.update().where(schema_versions.c.part == part.name).values(**values)
        )
    else:
        conn.execute(schema_versions.insert().values(part=part.name, **values))
