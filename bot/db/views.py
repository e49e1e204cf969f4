"""Read models for the dashboard: runs, one run with its calls and audit trail, deliveries,
repositories and spend. Read-only; each takes the repositories the viewer may see (None: all)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select

from bot.db import schema
from bot.db.engine import TableAccess, fetch_row, fetch_rows, insert_on_conflict
from bot.db.ledger import month_start

Visible = Collection[str] | None


def _visible(query: Any, column: Any, repos: Visible) -> Any:
    return query if repos is None else query.where(column.in_(list(repos)))


class DashboardViews(TableAccess):
    def runs(
        self,
        repos: Visible,
        *,
        repo: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        runs, opened = schema.runs, schema.pr_activity
        query = _visible(select(runs), runs.c.repo, repos)
        if repo:
            query = query.where(runs.c.repo == repo)
        if status:
            query = query.where(runs.c.status == status)
        with self.engine.connect() as conn:
            rows = [
                dict(r._mapping)
                for r in conn.execute(query.order_by(runs.c.created_at.desc()).limit(limit))
            ]
            pulls = {
                (r.repo, r.branch): r.number
                for r in conn.execute(select(opened).where(opened.c.kind == "opened"))
            }
        for row in rows:
            row["pull_number"] = pulls.get((row["repo"], row["branch"]))
            end = row["finished_at"] or time.time()
            row["duration_s"] = max(0.0, end - row["created_at"])
        return rows

    def run(self, run_id: str, repos: Visible) -> dict[str, Any] | None:
        runs = schema.runs
        query = _visible(select(runs).where(runs.c.id == run_id), runs.c.repo, repos)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
            if row is None:
                return None
            calls = schema.model_calls
            audit = schema.audit_log
            found = dict(row._mapping)
            found["calls"] = [
                dict(c._mapping)
                for c in conn.execute(
                    select(calls).where(calls.c.run_id == run_id).order_by(calls.c.seq)
                )
            ]
            found["audit"] = [
                dict(a._mapping)
                for a in conn.execute(
                    select(audit).where(audit.c.run_id == run_id).order_by(audit.c.at, audit.c.id)
                )
            ]
        return found

    def deliveries(self, repos: Visible, limit: int = 100) -> list[dict[str, Any]]:
        table = schema.deliveries
        columns = [c for c in table.c if c.name != "payload"]
        query = _visible(select(*columns), table.c.repository, repos)
        return fetch_rows(self.engine, query.order_by(table.c.received_at.desc()).limit(limit))

    def delivery(self, delivery_id: str, repos: Visible) -> dict[str, Any] | None:
        table = schema.deliveries
        columns = [c for c in table.c if c.name != "payload"]
        query = _visible(
            select(*columns).where(table.c.delivery_id == delivery_id), table.c.repository, repos
        )
        return fetch_row(self.engine, query)

    def repositories(self, repos: Visible) -> list[dict[str, Any]]:
        """Installed repositories with this month's spend and runs."""
        installed = schema.installation_repositories
        runs, calls = schema.runs, schema.model_calls
        since = month_start()
        with self.engine.connect() as conn:
            names = {r.full_name: r.installation_id for r in conn.execute(select(installed))}
            spend = dict(
                conn.execute(
                    select(runs.c.repo, func.sum(calls.c.cost_usd))
                    .select_from(calls.join(runs, runs.c.id == calls.c.run_id))
                    .where(calls.c.created_at >= since)
                    .group_by(runs.c.repo)
                ).all()
            )
        shown = sorted(set(names) | {r for r in spend if r})
        if repos is not None:
            shown = [name for name in shown if name in repos]
        return [
            {
                "repo": name,
                "installation_id": names.get(name),
                "spend_usd": float(spend.get(name) or 0),
            }
            for name in shown
        ]

    def config_checks(self) -> dict[str, dict[str, Any]]:
        table = schema.config_checks
        with self.engine.connect() as conn:
            return {r.repo: dict(r._mapping) for r in conn.execute(select(table))}

    def record_config_check(self, repo: str, error: str | None) -> None:
        """The repository's last config check, in one statement: deliveries of installation
        events have no lock, so two may check one repository at once."""
        now = time.time()
        stmt = insert_on_conflict(self.engine.dialect.name, schema.config_checks)
        stmt = stmt.values(repo=repo, error=error, at=now).on_conflict_do_update(
            index_elements=["repo"], set_={"error": error, "at": now}
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def spend_by_day(self, repos: Visible, days: int = 30) -> dict[str, dict[str, float]]:
        """Day (YYYY-MM-DD, UTC) -> repository -> model dollars."""
        runs, calls = schema.runs, schema.model_calls
        since = time.time() - days * 86400
        query = _visible(
            select(runs.c.repo, calls.c.created_at, calls.c.cost_usd)
            .select_from(calls.join(runs, runs.c.id == calls.c.run_id))
            .where(calls.c.created_at >= since),
            runs.c.repo,
            repos,
        )
        found: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        with self.engine.connect() as conn:
            for repo, at, cost in conn.execute(query):
                found[time.strftime("%Y-%m-%d", time.gmtime(at))][repo or "(local)"] += float(cost)
        return {day: dict(per) for day, per in sorted(found.items())}
