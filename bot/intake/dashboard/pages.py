"""The dashboard's pages. Each reads through `DashboardViews` (or the queue) for what the viewer
may see, renders a template, and passes the page through outbound redaction before it leaves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bot.config import Settings
from bot.db import workers as worker_rows
from bot.db.views import DashboardViews
from bot.intake.dashboard.charts import spend_chart
from bot.intake.dashboard.session import Viewer, csrf_token, form_is_ours
from bot.intake.dashboard.transcript import read_turns
from bot.runs.report import build_report, load_ledgers, rates_of
from bot.security.redact import redact

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
)
ARTIFACT_CHARS = 200_000


def when(at: float | None) -> str:
    return "" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


@dataclass
class Pages:
    settings: Settings
    views: DashboardViews
    store: Any
    queue: Any
    web_url: str
    known: Callable[[], tuple[str, ...]]
    redeliver: Callable[[str], Any] | None = None

    def __post_init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("bot.intake.dashboard", "templates"),
            autoescape=select_autoescape(["html"]),
        )

    def render(self, request: Request, name: str, code: int = 200, **values: Any) -> Response:
        def url(route: str, **params: Any) -> str:
            return str(request.url_for(route, **params).path)

        template = self.env.get_template(name)
        flash = request.session.pop("flash", None)
        values.setdefault("flash", flash)  # a page's own message wins over the last one's
        html = template.render(url=url, csrf=csrf_token(request), web=self.web_url, **values)
        return HTMLResponse(redact(html, self.known()), status_code=code)

    def back(self, request: Request, route: str, flash: str) -> Response:
        request.session["flash"] = flash
        return RedirectResponse(str(request.url_for(route).path), status_code=303)

    async def runs(self, request: Request, viewer: Viewer) -> Response:
        repo = request.query_params.get("repo") or None
        status = request.query_params.get("status") or None
        rows = await asyncio.to_thread(self.views.runs, viewer.visible, repo=repo, status=status)
        repos = [
            r["repo"] for r in await asyncio.to_thread(self.views.repositories, viewer.visible)
        ]
        running = any(r["status"] == "running" for r in rows)
        return self.render(
            request,
            "runs.html",
            title="Runs",
            here="runs",
            viewer=viewer,
            runs=rows,
            repo=repo,
            status=status,
            repos=sorted(set(repos) | {r["repo"] for r in rows if r["repo"]}),
            statuses=STATUSES,
            refresh=5 if running else None,
        )

    async def run(self, request: Request, viewer: Viewer) -> Response:
        run_id = request.path_params["run_id"]
        run = await asyncio.to_thread(self.views.run, run_id, viewer.visible)
        if run is None:
            return self.render(request, "base.html", 404, title="Not found", viewer=viewer)
        run["duration_s"] = (run["finished_at"] or time.time()) - run["created_at"]
        audit = run["audit"]
        egress = [self._egress(row) for row in audit if str(row["action"]).startswith("egress.")]
        actions = [
            {**row, "when": when(row["at"])}
            for row in audit
            if not str(row["action"]).startswith("egress.")
        ]
        transcript = run["transcript_path"]
        return self.render(
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

    @staticmethod
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

    async def deliveries(self, request: Request, viewer: Viewer) -> Response:
        rows = await asyncio.to_thread(self.views.deliveries, viewer.visible)
        for row in rows:
            row["when"] = when(row["received_at"])
        return self.render(
            request,
            "deliveries.html",
            title="Deliveries",
            here="deliveries",
            viewer=viewer,
            deliveries=rows,
            can_redeliver=self.redeliver is not None,
        )

    async def redeliver_one(self, request: Request, viewer: Viewer) -> Response:
        delivery_id = request.path_params["delivery_id"]
        if not await form_is_ours(request):
            return HTMLResponse("The form expired: reload the page and try again.", 403)
        found = await asyncio.to_thread(self.views.delivery, delivery_id, viewer.visible)
        if found is None or self.redeliver is None:
            return self.back(request, "deliveries", f"No delivery {delivery_id} to redeliver.")
        try:
            sent = await self.redeliver(delivery_id)
        except Exception as exc:  # GitHub refused or is unreachable: say so, lose nothing
            return self.back(
                request, "deliveries", f"GitHub refused the redelivery ({type(exc).__name__})."
            )
        flash = (
            f"GitHub is sending {delivery_id} again."
            if sent
            else f"GitHub no longer has {delivery_id} (it keeps deliveries for a few days)."
        )
        return self.back(request, "deliveries", flash)

    async def jobs(self, request: Request, viewer: Viewer) -> Response:
        if not viewer.admin:
            return self.render(
                request,
                "base.html",
                403,
                title="Admins only",
                viewer=viewer,
                flash="The queue is shown to admins only.",
            )
        jobs = await asyncio.to_thread(self.queue.browse)
        counts = await asyncio.to_thread(self.queue.counts)
        workers = await asyncio.to_thread(worker_rows.listed, self.views.engine)
        # A worker that missed three heartbeats is likely gone (killed, or its host down):
        # its slots are not counted, and recovery will forget it.
        stale = 3 * self.settings.worker_heartbeat_seconds
        for worker in workers:
            worker["stale"] = worker["age_seconds"] > stale
        live = [w for w in workers if not w["stale"]]
        return self.render(
            request,
            "queue.html",
            title="Queue",
            here="queue",
            viewer=viewer,
            jobs=jobs,
            counts=counts,
            workers=workers,
            capacity=sum(int(w["capacity"]) for w in live),
            running=sum(int(w["running"]) for w in live),
            live=len(live),
            when=when,
        )

    async def job_action(self, request: Request, viewer: Viewer, action: str) -> Response:
        if not viewer.admin or not await form_is_ours(request):
            return HTMLResponse(
                "Not allowed: sign in as an admin and use the page's own form.", 403
            )
        job_id = int(request.path_params["job_id"])
        done = await asyncio.to_thread(getattr(self.queue, f"{action}_dead"), job_id)
        verb = {"retry": "queued again", "drop": "dropped"}[action]
        return self.back(
            request, "queue", f"Job {job_id} {verb}." if done else f"Job {job_id} is not dead."
        )

    async def repos(self, request: Request, viewer: Viewer) -> Response:
        rows = await asyncio.to_thread(self.views.repositories, viewer.visible)
        checks = await asyncio.to_thread(self.views.config_checks)
        for row in rows:
            check = checks.get(row["repo"])
            row["config_checked"] = check is not None
            row["config_error"] = check.get("error") if check else None
            row["budget"] = self.settings.repo_monthly_budget_usd
        return self.render(
            request, "repos.html", title="Repositories", here="repos", viewer=viewer, repos=rows
        )

    async def costs(self, request: Request, viewer: Viewer) -> Response:
        since = time.time() - 90 * 86400
        by_day = await asyncio.to_thread(self.views.spend_by_day, viewer.visible)
        ledgers = await asyncio.to_thread(load_ledgers, self.store, None, since)
        runs = await asyncio.to_thread(self.store.ledger.runs_since, None, since)
        if not viewer.admin:
            ledgers = [ledger for ledger in ledgers if viewer.may_see(ledger.repo)]
            runs = [run for run in runs if viewer.may_see(run.get("repo"))]
        report = build_report(ledgers, runs, rates_of(self.settings), since=since, repo=None)
        return self.render(
            request,
            "costs.html",
            title="Costs",
            here="costs",
            viewer=viewer,
            chart=spend_chart(by_day),
            report=report,
        )


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
