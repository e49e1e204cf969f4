"""`shipmate audit --run ID`: every action taken on GitHub and every egress request of a run."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.config import Settings
from bot.store import Store


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_audit(settings: Settings, run_id: str) -> int:
    store = Store.from_settings(settings)
    store.migrate()
    run = store.get_run(run_id)
    if run is None:
        print(f"shipmate audit: no run {run_id}")
        return 1
    print(f"run {run_id}: {run['status']} {run.get('repo') or ''} cost ${run['cost_usd']:.4f}")
    rows = [
        (
            a["at"],
            "action",
            f"{a['action']} {a['target'] or ''} by {a['actor'] or '-'} "
            f"{json.dumps(a['detail']) if a['detail'] else ''}".rstrip(),
        )
        for a in store.audit_for_run(run_id)
    ]
    rows += [
        (
            e["at"],
            "egress",
            f"{e['method']} {e['host']}:{e['port']} "
            f"{'allowed' if e['allowed'] else 'DENIED'} out={e['bytes_out']} "
            f"in={e['bytes_in']} {e['reason']}",
        )
        for e in store.egress_for_task(run_id)
    ]
    for at, kind, text in sorted(rows):
        print(f"{_when(at)}  {kind:6}  {text}")
    store.dispose()
    return 0
