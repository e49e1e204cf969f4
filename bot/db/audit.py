"""The audit trail: `shipmate audit --run ID` prints every action taken on GitHub and every
egress request of a run as one stream; `StoreAudit` is the hook that records GitHub actions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from bot.config import Settings
from bot.db.runs import RunTables
from bot.db.store import Store


class StoreAudit:
    """Records one action on GitHub. The run and delivery are the ones given here, else those
    bound in structlog's context for the job (`run_id`, `delivery_id`)."""

    def __init__(
        self,
        log: RunTables,
        *,
        run_id: str | None = None,
        delivery_id: str | None = None,
        actor: str = "shipmate",
    ) -> None:
        self.log, self.run_id, self.delivery_id, self.actor = log, run_id, delivery_id, actor

    async def __call__(self, action: str, target: str, detail: Mapping[str, Any]) -> None:
        bound = structlog.contextvars.get_contextvars()
        await asyncio.to_thread(
            self.log.append_audit,
            action,
            run_id=self.run_id or bound.get("run_id"),
            delivery_id=self.delivery_id or bound.get("delivery_id"),
            actor=self.actor,
            target=target,
            detail=dict(detail),
        )


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def audit_line(row: Mapping[str, Any]) -> str:
    """One row of the trail: time, kind, what was done (by whom), and the delivery behind it."""
    detail = row["detail"] or {}
    if str(row["action"]).startswith("egress."):
        verdict = "allowed" if row["action"] == "egress.allowed" else "DENIED"
        what = (
            f"egress  {detail.get('method')} {row['target']} {verdict} "
            f"out={detail.get('bytes_out')} in={detail.get('bytes_in')} "
            f"{detail.get('reason') or ''}"
        ).rstrip()
    else:
        extra = f" {json.dumps(detail, sort_keys=True)}" if detail else ""
        what = f"action  {row['action']} {row['target'] or ''} by {row['actor'] or '-'}{extra}"
    return f"{_when(row['at'])}  {what}  [delivery {row['delivery_id'] or '-'}]"


def print_audit(settings: Settings, run_id: str) -> int:
    store = Store.from_settings(settings)
    try:
        store.migrate()
        run = store.get_run(run_id)
        if run is None:
            print(f"shipmate audit: no run {run_id}")
            return 1
        print(
            f"run {run_id}: {run['status']} {run.get('repo') or ''} cost ${run['cost_usd']:.4f} "
            f"delivery {run.get('delivery_id') or '-'}"
        )
        for row in store.audit_for_run(run_id):
            print(audit_line(row))
        return 0
    finally:
        store.dispose()
