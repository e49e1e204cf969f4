"""The queue page, for admins only: the workers (their slots, load and heartbeat), the jobs by
state, and retrying or dropping a dead one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from bot.db import workers as worker_rows
from bot.intake.dashboard.pages import PageFamily, form_post, page, when
from bot.intake.dashboard.session import Viewer, form_is_ours


@dataclass
class QueuePages(PageFamily):
    queue: Any

    def routes(self) -> list[Route]:
        return [
            page("/queue", "queue", self.jobs),
            form_post("/queue/{job_id:int}/retry", "retry_job", self.retry_job),
            form_post("/queue/{job_id:int}/drop", "drop_job", self.drop_job),
        ]

    async def jobs(self, request: Request, viewer: Viewer) -> Response:
        if not viewer.admin:
            return self.pages.render(
                request,
                "base.html",
                403,
                title="Admins only",
                viewer=viewer,
                flash="The queue is shown to admins only.",
            )
        jobs = await asyncio.to_thread(self.queue.browse)
        counts = await asyncio.to_thread(self.queue.counts)
        workers = await asyncio.to_thread(worker_rows.listed, self.pages.views.engine)
        # A worker that missed three heartbeats is likely gone (killed, or its host down):
        # its slots are not counted, and recovery will forget it.
        stale = 3 * self.pages.settings.worker_heartbeat_seconds
        for worker in workers:
            worker["stale"] = worker["age_seconds"] > stale
        live = [w for w in workers if not w["stale"]]
        return self.pages.section(
            request,
            viewer,
            "queue",
            jobs=jobs,
            counts=counts,
            workers=workers,
            capacity=sum(int(w["capacity"]) for w in live),
            running=sum(int(w["running"]) for w in live),
            live=len(live),
            when=when,
        )

    async def retry_job(self, request: Request, viewer: Viewer) -> Response:
        return await self._job_action(request, viewer, "retry")

    async def drop_job(self, request: Request, viewer: Viewer) -> Response:
        return await self._job_action(request, viewer, "drop")

    async def _job_action(self, request: Request, viewer: Viewer, action: str) -> Response:
        if not viewer.admin or not await form_is_ours(request):
            return HTMLResponse(
                "Not allowed: sign in as an admin and use the page's own form.", 403
            )
        job_id = int(request.path_params["job_id"])
        done = await asyncio.to_thread(getattr(self.queue, f"{action}_dead"), job_id)
        verb = {"retry": "queued again", "drop": "dropped"}[action]
        return self.pages.back(
            request, "queue", f"Job {job_id} {verb}." if done else f"Job {job_id} is not dead."
        )
