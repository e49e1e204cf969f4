"""Runs, their model calls, the append-only audit trail (GitHub actions and egress), repair
caps and refusals."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.engine import Connection

from bot.db import schema
from bot.db.engine import TableAccess, fetch_row, fetch_rows, rows_where


class RunTables(TableAccess):
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
        return fetch_row(self.engine, select(schema.runs).where(schema.runs.c.id == run_id))

    def attempts_of(self, key: str) -> list[dict[str, Any]]:
        """The runs a `run` job's attempts recorded: `key` and `key.2`, `key.3`, ... (see
        bot/runs/attempts.py), oldest first."""
        table = schema.runs
        query = select(table).where(or_(table.c.id == key, table.c.id.like(f"{key}.%")))
        return fetch_rows(self.engine, query.order_by(table.c.created_at))

    def runs_for(self, repo: str, number: int) -> list[dict[str, Any]]:
        return rows_where(self.engine, schema.runs, order_by="created_at", repo=repo, number=number)

    def record_model_call(self, run_id: str, seq: int, model: str, **values: Any) -> None:
        values.setdefault("created_at", time.time())
        with self.engine.begin() as conn:
            conn.execute(
                insert(schema.model_calls).values(run_id=run_id, seq=seq, model=model, **values)
            )

    def model_calls(self, run_id: str) -> list[dict[str, Any]]:
        return rows_where(self.engine, schema.model_calls, order_by="seq", run_id=run_id)

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
        return fetch_rows(
            self.engine,
            select(table).where(table.c.run_id == run_id).order_by(table.c.at, table.c.id),
        )

    def audit_for_delivery(self, delivery_id: str) -> list[dict[str, Any]]:
        """What a delivery's own job did (not a run's), in time order: what a later attempt of
        that job reads so as not to do it twice."""
        table = schema.audit_log
        return fetch_rows(
            self.engine,
            select(table.c.action, table.c.target, table.c.detail)
            .where(table.c.delivery_id == delivery_id, table.c.run_id.is_(None))
            .order_by(table.c.at, table.c.id),
        )

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

    def bump_repair_attempt(
        self, repo: str, number: int, fingerprint: str, *, delivery_id: str | None = None
    ) -> tuple[int, int]:
        """Count one more repair of this failure, once per delivery (a `repair.attempt` audit
        row of it, in the same transaction, says it was counted: a job run again after a kill
        counts nothing more); return (attempts of it, attempts on the PR)."""
        table = schema.repair_attempts
        stmt = (
            self._insert(table)
            .values(repo=repo, number=number, fingerprint=fingerprint, count=1)
            .on_conflict_do_update(
                index_elements=["repo", "number", "fingerprint"], set_={"count": table.c.count + 1}
            )
        )
        target = f"{repo}#{number}"
        with self.engine.begin() as conn:
            if delivery_id is None or not _counted(conn, delivery_id, target, fingerprint):
                conn.execute(stmt)
                if delivery_id is not None:
                    detail = {"fingerprint": fingerprint}
                    _own_row(conn, delivery_id, "repair.attempt", target, detail)
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

    def first_refusal(
        self, repo: str, number: int, login: str, *, delivery_id: str | None = None
    ) -> bool:
        """Record a refusal; True only the first time for this thread and user, and again for
        the delivery that was first (its job run again after a kill has yet to say it)."""
        stmt = (
            self._insert(schema.refusals)
            .values(repo=repo, number=number, login=login, at=time.time())
            .on_conflict_do_nothing()
            .returning(schema.refusals.c.login)
        )
        target = f"{repo}#{number}"
        with self.engine.begin() as conn:
            if conn.execute(stmt).first() is None:
                return delivery_id is not None and _was_first(conn, delivery_id, target, login)
            if delivery_id is not None:
                _own_row(conn, delivery_id, "refusal.first", target, {"login": login})
            return True


def _own_row(
    conn: Connection, delivery_id: str, action: str, target: str, detail: dict[str, Any]
) -> None:
    """An audit row of a delivery's own job, in the transaction of what it records."""
    conn.execute(
        insert(schema.audit_log).values(
            at=time.time(), delivery_id=delivery_id, action=action, target=target, detail=detail
        )
    )


def _counted(conn: Connection, delivery_id: str, target: str, fingerprint: str) -> bool:
    """Whether this delivery already counted a repair of this failure."""
    found = _details(conn, delivery_id, "repair.attempt", target)
    return any(detail.get("fingerprint") == fingerprint for detail in found)


def _was_first(conn: Connection, delivery_id: str, target: str, login: str) -> bool:
    """Whether this delivery made the first refusal on this thread to `login`."""
    return any(
        d.get("login") == login for d in _details(conn, delivery_id, "refusal.first", target)
    )


def _details(conn: Connection, delivery_id: str, action: str, target: str) -> list[dict[str, Any]]:
    """The details of a delivery's own audit rows of `action` on `target`."""
    table = schema.audit_log
    rows = conn.execute(
        select(table.c.detail).where(
            table.c.delivery_id == delivery_id, table.c.action == action, table.c.target == target
        )
    ).scalars()
    return [dict(detail or {}) for detail in rows]
