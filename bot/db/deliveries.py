"""The deliveries table: each verified webhook, stored before its 202, and what its job reads."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from isal import isal_zlib
from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection

from bot.db import schema
from bot.db.engine import TableAccess, record_of

DeliveryStatus = Literal["queued", "duplicate", "ignored"]


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


# A delivery ready to insert: the delivery, its status, its packed payload.
PreparedDelivery = tuple[Delivery, DeliveryStatus, bytes]


class DeliveryTables(TableAccess):
    """Deliveries and their digests (a body accepted once is a replay after)."""

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
        return record_of(StoredDelivery, row, payload=unpack_payload(bytes(row.payload)))

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
