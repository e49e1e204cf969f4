"""The installations of the App and the repositories each one grants."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select

from bot.db import schema
from bot.db.engine import TableAccess


@dataclass(frozen=True)
class Installation:
    id: int
    account: str
    suspended: bool


class InstallationTables(TableAccess):
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
