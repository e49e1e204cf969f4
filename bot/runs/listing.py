"""`shipmate runs`: the recent runs, newest first — from GitHub and from `shipmate run` — each with
the id `shipmate audit --run ID` takes."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from bot.config import Settings

COLUMNS = ("id", "created_at", "repo", "number", "kind", "status", "steps", "cost_usd", "branch")


def _when(at: float | None) -> str:
    return "" if at is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(at))


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The runs as aligned columns, one a line."""
    if not rows:
        return "No runs yet."
    lines = [("RUN", "STARTED (UTC)", "REPOSITORY", "TRIGGER", "STATUS", "STEPS", "COST")]
    for row in rows:
        where = str(row["repo"] or "(local)") + (f"#{row['number']}" if row["number"] else "")
        lines.append(
            (
                str(row["id"]),
                _when(row["created_at"]),
                where,
                str(row["kind"]),
                str(row["status"]),
                str(row["steps"] or 0),
                f"${float(row['cost_usd'] or 0):.4f}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def runs_command(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db.store import Store

    store = Store.from_settings(settings)
    try:
        store.migrate()
        rows = store.views.runs(None, repo=args.repo, status=args.status, limit=args.limit)
    finally:
        store.dispose()
    if args.json:
        print(json.dumps([{name: row[name] for name in COLUMNS} for row in rows]))
    else:
        print(table(rows))
    return 0
