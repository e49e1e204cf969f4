"""The deliveries page: the webhooks GitHub sent, and a button asking GitHub to send one again
(when the app can reach GitHub as the App)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from bot.intake.dashboard.pages import PageFamily, form_post, page, when
from bot.intake.dashboard.session import Viewer, form_is_ours


@dataclass
class DeliveryPages(PageFamily):
    redeliver: Callable[[str], Awaitable[bool]] | None

    def routes(self) -> list[Route]:
        return [
            page("/deliveries", "deliveries", self.deliveries),
            form_post("/deliveries/{delivery_id:str}/redeliver", "redeliver", self.redeliver_one),
        ]

    async def deliveries(self, request: Request, viewer: Viewer) -> Response:
        rows = await asyncio.to_thread(self.pages.views.deliveries, viewer.visible)
        for row in rows:
            row["when"] = when(row["received_at"])
        return self.pages.section(
            request,
            viewer,
            "deliveries",
            deliveries=rows,
            can_redeliver=self.redeliver is not None,
        )

    async def redeliver_one(self, request: Request, viewer: Viewer) -> Response:
        delivery_id = request.path_params["delivery_id"]
        if not await form_is_ours(request):
            return HTMLResponse("The form expired: reload the page and try again.", 403)
        found = await asyncio.to_thread(self.pages.views.delivery, delivery_id, viewer.visible)
        back = self.pages.back
        if found is None or self.redeliver is None:
            return back(request, "deliveries", f"No delivery {delivery_id} to redeliver.")
        try:
            sent = await self.redeliver(delivery_id)
        except Exception as exc:  # GitHub refused or is unreachable: say so, lose nothing
            return back(
                request, "deliveries", f"GitHub refused the redelivery ({type(exc).__name__})."
            )
        flash = (
            f"GitHub is sending {delivery_id} again."
            if sent
            else f"GitHub no longer has {delivery_id} (it keeps deliveries for a few days)."
        )
        return back(request, "deliveries", flash)
