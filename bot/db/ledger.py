"""The ledger's tables: CI jobs on Shipmate's branches, activity on its pull requests, and the
month's model spend that budgets are checked against. Inserts are idempotent by key (GitHub
redelivers)."""

from __future__ import annotations

import calendar
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select

from bot.db import schema
from bot.db.engine import TableAccess, fetch_rows, in_period, rows_where


def month_start(now: float | None = None) -> float:
    """The first second of this calendar month, UTC."""
    moment = time.gmtime(time.time() if now is None else now)
    return float(calendar.timegm((moment.tm_year, moment.tm_mon, 1, 0, 0, 0)))


class LedgerTables(TableAccess):
    def _insert_once(self, table: Any, key: str, values: dict[str, Any]) -> bool:
        with self.engine.begin() as conn:
            found = conn.execute(select(table.c.key).where(table.c.key == key)).first()
            if found is not None:
                return False
            conn.execute(insert(table).values(key=key, **values))
        return True

    def record_ci_job(self, key: str, **values: Any) -> bool:
        return self._insert_once(schema.ci_jobs, key, values)

    def record_activity(self, key: str, **values: Any) -> bool:
        return self._insert_once(schema.pr_activity, key, values)

    def ci_jobs_for(self, repo: str, branch: str) -> list[dict[str, Any]]:
        return rows_where(self.engine, schema.ci_jobs, repo=repo, head_branch=branch)

    def activity_for(self, repo: str, number: int) -> list[dict[str, Any]]:
        return rows_where(self.engine, schema.pr_activity, order_by="at", repo=repo, number=number)

    def is_shipmate_pull(self, repo: str, number: int) -> bool:
        table = schema.pr_activity
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table.c.key).where(
                    table.c.repo == repo, table.c.number == number, table.c.kind == "opened"
                )
            ).first()
        return row is not None

    def opened_pulls(
        self, repo: str | None, since: float, until: float | None = None
    ) -> list[dict[str, Any]]:
        """Pull requests opened in [since, until)."""
        table = schema.pr_activity
        query = in_period(select(table).where(table.c.kind == "opened"), table.c.at, since, until)
        if repo:
            query = query.where(table.c.repo == repo)
        return fetch_rows(self.engine, query.order_by(table.c.at))

    def runs_of_branch(self, repo: str, branch: str) -> list[dict[str, Any]]:
        return rows_where(self.engine, schema.runs, order_by="created_at", repo=repo, branch=branch)

    def runs_since(
        self, repo: str | None, since: float, until: float | None = None
    ) -> list[dict[str, Any]]:
        """Runs started in [since, until)."""
        table = schema.runs
        query = in_period(select(table), table.c.created_at, since, until)
        if repo:
            query = query.where(table.c.repo == repo)
        return fetch_rows(self.engine, query.order_by(table.c.created_at))

    def month_spend(
        self,
        *,
        repo: str | None = None,
        installation_id: int | None = None,
        now: float | None = None,
    ) -> float:
        """Model dollars spent this calendar month (every call, the running runs' included) by
        one repository's runs, or by one installation's (through the delivery that started each
        run)."""
        calls, runs = schema.model_calls, schema.runs
        query = (
            select(func.coalesce(func.sum(calls.c.cost_usd), 0.0))
            .select_from(calls.join(runs, runs.c.id == calls.c.run_id))
            .where(calls.c.created_at >= month_start(now))
        )
        if repo is not None:
            query = query.where(runs.c.repo == repo)
        if installation_id is not None:
            deliveries = schema.deliveries
            query = query.where(
                runs.c.delivery_id.in_(
                    select(deliveries.c.delivery_id).where(
                        deliveries.c.installation_id == installation_id
                    )
                )
            )
        with self.engine.connect() as conn:
            return float(conn.execute(query).scalar_one())

    def transcript_paths(self, run_ids: Sequence[str]) -> list[str]:
        table = schema.runs
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.transcript_path).where(table.c.id.in_(run_ids)))
            return [row.transcript_path for row in rows if row.transcript_path]
