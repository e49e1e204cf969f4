"""The `webhook` job: load the stored delivery, build its `Context`, route it to the handlers,
and record on the delivery whether that went well."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import structlog
from pydantic import ValidationError

from bot.config import Settings
from bot.db.store import Store
from bot.jobs.queue import Job, Queue
from bot.jobs.worker import JobContext, JobRejected
from bot.triggers.context import ClientFactory, Context
from bot.triggers.routing import Router

log = structlog.get_logger("shipmate.dispatch")


@dataclass(frozen=True)
class DeliveryJob:
    """A job handler (`JobHandler`) for the `webhook` kind; its collaborators come from
    bot/app.py."""

    settings: Settings
    store: Store
    queue: Queue
    router: Router
    clients: ClientFactory | None

    async def __call__(self, job: Job, job_context: JobContext) -> None:
        delivery_id = str(job.payload["delivery_id"])
        stored = await asyncio.to_thread(self.store.get_delivery, delivery_id)
        if stored is None:
            raise LookupError(f"delivery {delivery_id} is not stored")
        if stored.status == "handled":
            # Its job ran to the end but was not marked done (its worker died in between):
            # handling it again would answer twice.
            log.info("delivery.already_handled", delivery_id=delivery_id)
            return
        bound = {
            "delivery_id": delivery_id,
            "github_event": stored.event,
            "repo": stored.repository,
            "installation_id": stored.installation_id,
        }
        with structlog.contextvars.bound_contextvars(**bound):
            context = Context(
                event=stored.event,
                action=stored.action,
                delivery_id=delivery_id,
                payload=json.loads(stored.payload),
                installation_id=stored.installation_id,
                repository=stored.repository,
                log=log.bind(**bound),
                settings=self.settings,
                store=self.store,
                queue=self.queue,
                client_factory=self.clients,
                attempt=job.attempts,
            )
            await self._route(context)

    async def _route(self, context: Context) -> None:
        try:
            count = await self.router.dispatch(context)
        except ValidationError as exc:
            # The payload lacks what its handler reads (bot/triggers/events.py): no retry
            # would change that.
            await self._failed(context, exc)
            raise JobRejected(f"{context.event} payload: {exc}") from None
        except Exception as exc:
            await self._failed(context, exc)
            raise
        await asyncio.to_thread(self.store.set_delivery_status, context.delivery_id, "handled")
        context.log.info("delivery.handled", handlers=count)

    async def _failed(self, context: Context, exc: Exception) -> None:
        await asyncio.to_thread(
            self.store.set_delivery_status,
            context.delivery_id,
            "failed",
            f"{type(exc).__name__}: {exc}",
        )
