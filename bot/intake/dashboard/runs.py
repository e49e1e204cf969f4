"""The runs pages: the list (filtered by repository and status) and one run (plan, transcript,
diff, tests, egress, GitHub actions, cost). Both refresh themselves while a run is running."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.intake.dashboard.pages import PageFamily, page, when
from bot.intake.dashboard.session import Viewer
from bot.intake.dashboard.transcript import read_turns

STATUSES = (
    "running",
    "completed",
    "failed",
    "blocked",
    "held",
    "cost_limit",
    "step_limit",
    "timeout",
    "stopped",
    "interrupted",  # an attempt whose worker stopped; its job ran again (bot/runs/attempts.py)
)
ARTIFACT_CHARS = 200_000


class RunPages(PageFamily):
    def routes(self) -> list[Route]:
        return [page("/", "runs", self.runs), page("/runs/{run_id:str}", "run", self.run)]

    async def runs(self, request: Request, viewer: Viewer) -> Response:
        views = self.pages.views
        repo = request.query_params.get("repo") or None
        status = request.query_params.get("status") or None
        rows = await asyncio.to_thread(views.runs, viewer.visible, repo=repo, status=status)
        repos = [r["repo"] for r in await asyncio.to_thread(views.repositories, viewer.visible)]
        running = any(r["status"] == "running" for r in rows)
        return self.pages.section(
            request,
            viewer,
            "runs",
            runs=rows,
            repo=repo,
            status=status,
            repos=sorted(set(repos) | {r["repo"] for r in rows if r["repo"]}),
            statuses=STATUSES,
            refresh=5 if running else None,
        )

    async def run(self, request: Request, viewer: Viewer) -> Response:
        run_id = request.path_params["run_id"]
        run = await asyncio.to_thread(self.pages.views.run, run_id, viewer.visible)
        if run is None:
            return self.pages.render(request, "base.html", 404, title="Not found", viewer=viewer)
        run["duration_s"] = (run["finished_at"] or time.time()) - run["created_at"]
        audit = run["audit"]
        egress = [_egress(row) for row in audit if str(row["action"]).startswith("egress.")]
        actions = [
            {**row, "when": when(row["at"])}
            for row in audit
            if not str(row["action"]).startswith("egress.")
        ]
        transcript = run["transcript_path"]
        return self.pages.render(
            request,
            "run.html",
            title=f"Run {run_id}",
            here="runs",
            viewer=viewer,
            run=run,
            transcript=await asyncio.to_thread(read_turns, transcript),
            diff=_artifact(transcript, ".diff"),
            tests=_artifact(transcript, ".tests.txt"),
            egress=egress,
            actions=actions,
            refresh=5 if run["status"] == "running" else None,
        )


def _egress(row: dict[str, Any]) -> dict[str, Any]:
    host, _, port = str(row["target"] or "").rpartition(":")
    detail = row["detail"] or {}
    return {
        "when": when(row["at"]),
        "host": host,
        "port": port,
        "allowed": row["action"] == "egress.allowed",
        "method": detail.get("method"),
        "reason": detail.get("reason"),
    }


def _artifact(transcript: str | None, suffix: str) -> str:
    """A run's saved diff or test output, beside its transcript."""
    if not transcript:
        return ""
    path = Path(transcript).with_suffix(suffix)
    try:
        with path.open("rb") as handle:
            return handle.read(ARTIFACT_CHARS).decode(errors="replace")
    except OSError:
        return ""
