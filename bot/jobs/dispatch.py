"""Job handlers by kind. "webhook": load the stored delivery, build its Context, route it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog
from githubkit import GitHub

from bot.config import Settings
from bot.db.store import Store
from bot.github.client import HANDLER, GitHubApp
from bot.jobs.queue import Job, Queue
from bot.jobs.worker import JobContext, JobHandler
from bot.triggers.context import ClientFactory, Context
from bot.triggers.routing import Router

log = structlog.get_logger("shipmate.dispatch")


def client_factory(settings: Settings) -> ClientFactory | None:
    """Installation clients scoped to the delivery's repository, or None without an App."""
    if not settings.has_app_credentials:
        return None
    app = GitHubApp(settings)

    async def make(installation_id: int, repository: str | None) -> GitHub[Any]:
        return await app.installation_client(
            installation_id, repository=repository, permissions=HANDLER
        )

    return make


def job_handlers(
    settings: Settings,
    store: Store,
    queue: Queue,
    *,
    router: Router | None = None,
    clients: ClientFactory | None = None,
    run_deps: Any = None,
) -> dict[str, JobHandler]:
    if router is None:
        from handlers import router as default_router

        router = default_router
    factory = clients if clients is not None else client_factory(settings)
    chosen: Router = router

    async def webhook(job: Job, job_context: JobContext) -> None:
        delivery_id = str(job.payload["delivery_id"])
        stored = await asyncio.to_thread(store.get_delivery, delivery_id)
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
                settings=settings,
                store=store,
                queue=queue,
                client_factory=factory,
            )
            try:
                count = await chosen.dispatch(context)
            except Exception as exc:
                await asyncio.to_thread(
                    store.set_delivery_status, delivery_id, "failed", f"{type(exc).__name__}: {exc}"
                )
                raise
            await asyncio.to_thread(store.set_delivery_status, delivery_id, "handled")
            context.log.info("delivery.handled", handlers=count)

    handlers: dict[str, JobHandler] = {"webhook": webhook}
    from bot.runs.job import deps_for, run_job

    deps = run_deps if run_deps is not None else deps_for(settings, store)
    if deps is not None:
        chosen_deps = deps

        async def run(job: Job, job_context: JobContext) -> None:
            await run_job(job, job_context, chosen_deps)

        handlers["run"] = run
    return handlers
