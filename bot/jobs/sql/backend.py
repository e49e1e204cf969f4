"""`SQLQueue`: the SQL queue's functions (enqueue, leases, admin) behind `Queue`."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from bot.db import migrations
from bot.db.deliveries import Delivery, DeliveryStatus
from bot.db.migrations import SchemaPart
from bot.db.store import Store
from bot.jobs.queue import Job, JobRequest, Outcome, Queue
from bot.jobs.sql import admin, enqueue, leases, schema


class SQLQueue(Queue):
    """`Queue` on the Store's database (SQLite or PostgreSQL)."""

    def __init__(self, store: Store, *, default_max_attempts: int | None = None) -> None:
        self.store = store
        self.engine = store.engine
        self.default_max_attempts = default_max_attempts or store.job_max_attempts

    def schema_part(self) -> SchemaPart:
        return schema.schema_part()

    def migrate(self) -> None:
        """The jobs table alone (`shipmate migrate` does every part at once)."""
        migrations.migrate(self.engine, [self.schema_part()])

    def enqueue_deliveries(self, batch: Sequence[Delivery]) -> list[DeliveryStatus]:
        return enqueue.enqueue_deliveries(self.store, batch, self.default_max_attempts)

    def defer(self, request: JobRequest) -> int | None:
        return enqueue.enqueue(self.engine, request, self.default_max_attempts)

    def claim(
        self, worker_id: str, lease_seconds: float, kinds: Collection[str] | None = None
    ) -> Job | None:
        return leases.claim(self.engine, worker_id, lease_seconds, kinds)

    def heartbeat(self, job: Job, worker_id: str, lease_seconds: float) -> bool:
        return leases.heartbeat(self.engine, job, worker_id, lease_seconds)

    def complete(self, job: Job) -> bool:
        return leases.complete(self.engine, job)

    def fail(self, job: Job, error: str) -> Outcome:
        return leases.fail(self.engine, job, error)

    def release(self, job: Job) -> bool:
        return leases.release(self.engine, job)

    def request_abort(self, *, job_id: int | None = None, lock_key: str | None = None) -> int:
        return admin.request_abort(self.engine, job_id=job_id, lock_key=lock_key)

    def should_abort(self, job_id: int) -> bool:
        return admin.should_abort(self.engine, job_id)

    def running(self, lock_key: str) -> bool:
        return admin.running(self.engine, lock_key)

    def counts(self) -> dict[str, int]:
        return admin.counts(self.engine)

    def dead_letters(self) -> list[Job]:
        return admin.dead_letters(self.engine)

    def browse(self, limit: int = 200) -> list[dict[str, Any]]:
        return admin.browse(self.engine, limit)

    def retry_dead(self, job_id: int) -> bool:
        return admin.retry_dead(self.engine, job_id)

    def drop_dead(self, job_id: int) -> bool:
        return admin.drop_dead(self.engine, job_id)

    def get(self, job_id: int) -> dict[str, Any] | None:
        return admin.get(self.engine, job_id)

    def delete_finished_before(self, cutoff: float) -> int:
        return admin.delete_finished_before(self.engine, cutoff)
