"""The repositories page (each with its config check and budget) and the costs page (spend by
day, and what changes cost beside an engineer doing them), for what the viewer may see."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.intake.dashboard.charts import spend_chart
from bot.intake.dashboard.pages import PageFamily, page
from bot.intake.dashboard.session import Viewer
from bot.runs.report import build_report, load_ledgers, rates_of


@dataclass
class RepoPages(PageFamily):
    store: Any

    def routes(self) -> list[Route]:
        return [page("/repos", "repos", self.repos), page("/costs", "costs", self.costs)]

    async def repos(self, request: Request, viewer: Viewer) -> Response:
        rows = await asyncio.to_thread(self.pages.views.repositories, viewer.visible)
        checks = await asyncio.to_thread(self.pages.views.config_checks)
        for row in rows:
            check = checks.get(row["repo"])
            row["config_checked"] = check is not None
            row["config_error"] = check.get("error") if check else None
            row["budget"] = self.pages.settings.repo_monthly_budget_usd
        return self.pages.section(request, viewer, "repos", repos=rows)

    async def costs(self, request: Request, viewer: Viewer) -> Response:
        since = time.time() - 90 * 86400
        by_day = await asyncio.to_thread(self.pages.views.spend_by_day, viewer.visible)
        ledgers = await asyncio.to_thread(load_ledgers, self.store, None, since)
        runs = await asyncio.to_thread(self.store.ledger.runs_since, None, since)
        if not viewer.admin:
            ledgers = [ledger for ledger in ledgers if viewer.may_see(ledger.repo)]
            runs = [run for run in runs if viewer.may_see(run.get("repo"))]
        rates = rates_of(self.pages.settings)
        report = build_report(ledgers, runs, rates, since=since, repo=None)
        chart = spend_chart(by_day)
        return self.pages.section(request, viewer, "costs", chart=chart, report=report)
