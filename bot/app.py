"""The composition root: settings, store, queue, the GitHub App, the handlers, the run's
collaborators, the worker and the web app are built here and nowhere else; `shipmate serve` and
`shipmate worker` start from here. Every module below takes what it needs as parameters.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog
from githubkit import GitHub

from bot.agent.model import AnthropicModel, Model, missing_credential, unusable
from bot.config import ConfigError, Settings
from bot.db.store import Store
from bot.github.client import HANDLER, GitHubApp
from bot.github.manifest import with_saved_credentials
from bot.intake import server
from bot.intake.app import ShipmateApp, create_app
from bot.jobs.backends import Runner, make_runner, open_database, run_loop
from bot.jobs.maintenance import retention_every
from bot.jobs.queue import Job, Queue
from bot.jobs.sql import SQLQueue
from bot.jobs.worker import JobContext, JobHandler, Worker, install_stop_signals
from bot.runs.job import RunDeps, run_job
from bot.sandbox import operator_secrets
from bot.sandbox.checkout import CheckoutCache
from bot.sandbox.identity import announce
from bot.triggers.context import ClientFactory
from bot.triggers.delivery import DeliveryJob
from bot.triggers.routing import Router
from handlers import router as handlers_router

log = structlog.get_logger("shipmate.app")

# What uvicorn imports in each process of `serve --workers N`.
FACTORY = "bot.app:web_app_from_env"


def load_settings(**overrides: Any) -> Settings:
    """The environment's settings, checked — the model's provider and price and the operator's
    secret declarations included (bot.config imports neither the agent nor the sandbox); raises
    `ConfigError` naming the first bad setting."""
    settings = Settings.load(**overrides)
    problem = unusable(settings)
    if problem is not None:
        raise ConfigError(*problem)
    operator_secrets.load(settings)  # the operator's secret declarations, read once now
    return settings


def require_model_credential(settings: Settings) -> None:
    """Refuse to start a process that would run tasks without the model's credential."""
    problem = missing_credential(settings)
    if problem is not None:
        raise ConfigError(*problem)


def require_app(settings: Settings) -> None:
    """Refuse to start a worker that no GitHub App stands behind: it could act on nothing."""
    if not settings.has_app_credentials:
        raise ConfigError(
            "SHIPMATE_APP_ID",
            "not set, and no App was registered in the data dir: a worker without a GitHub App "
            "can act on no event; set SHIPMATE_APP_ID and SHIPMATE_PRIVATE_KEY, or register the "
            "App at / of `shipmate serve` (it saves them) and start the worker with the same "
            "SHIPMATE_DATA_DIR",
        )


def model_factory(settings: Settings) -> Callable[[], Model]:
    """A new model client per run (it is closed on the loop that used it)."""
    return lambda: AnthropicModel.from_settings(settings)


def installation_clients(settings: Settings, github_app: GitHubApp) -> ClientFactory:
    """Handlers' installation clients, scoped to the delivery's repository."""

    async def make(
        installation_id: int,
        repository: str | None,
        permissions: Mapping[str, str] | None = None,
    ) -> GitHub[Any]:
        return await github_app.installation_client(
            installation_id, repository=repository, permissions=permissions or HANDLER
        )

    return make


def run_deps(settings: Settings, store: Store) -> RunDeps | None:
    """What a `run` job needs, or None without App credentials (no run can start)."""
    if not settings.has_app_credentials:
        return None
    cache = CheckoutCache(Path(settings.data_dir) / "cache")
    return RunDeps(settings, store, GitHubApp(settings), cache, model_factory(settings))


def job_handlers(
    settings: Settings,
    store: Store,
    queue: Queue,
    *,
    router: Router | None = None,
    deps: RunDeps | None = None,
) -> dict[str, JobHandler]:
    """The job kinds: `webhook` (route a stored delivery) always, `run` when runs can start.
    Left out, the router is handlers/'s and deps come from the settings; the handlers'
    installation clients always do (none without App credentials)."""
    if router is None:
        router = handlers_router
    has_app = settings.has_app_credentials
    clients = installation_clients(settings, GitHubApp(settings)) if has_app else None
    handlers: dict[str, JobHandler] = {
        "webhook": DeliveryJob(settings, store, queue, router, clients)
    }
    chosen = deps if deps is not None else run_deps(settings, store)
    if chosen is not None:
        run_deps_of_this_worker = chosen

        async def run(job: Job, job_context: JobContext) -> None:
            await run_job(job, job_context, run_deps_of_this_worker)

        handlers["run"] = run
    return handlers


def worker_for(
    settings: Settings, store: Store, queue: Queue, handlers: dict[str, JobHandler]
) -> Runner:
    """The worker `serve` and `worker` run, of the queue's backend (bot/jobs/backends.py):
    shared slots sized to the host unless set, webhook-only slots, the lease or heartbeat."""
    return make_runner(settings, store, queue, handlers)


def web_app(settings: Settings, *, with_worker: bool = True) -> tuple[ShipmateApp, Store]:
    """The web app and its store, on a database at this code's schema version (else
    `StartupError`); the worker (if any) runs in the app's lifespan, and on the SQL queue so
    does retention (procrastinate's workers run it as a periodic task)."""
    router = handlers_router
    store, queue = open_database(settings)
    worker = worker_for(settings, store, queue, job_handlers(settings, store, queue, router=router))
    duties = []
    if isinstance(queue, SQLQueue):
        duties.append(functools.partial(retention_every, settings, store, queue, 3600))
    app = create_app(
        settings,
        store,
        router,
        on_queued=worker.notify if with_worker else None,
        lifespan=server.lifespan(settings, store, worker if with_worker else None, duties),
        queue=queue,
    )
    if isinstance(worker, Worker):
        worker.yield_to = app.busy
    return app, store


def web_app_from_env() -> ShipmateApp:
    """The app for uvicorn's own process manager (`serve --workers N`): each worker process
    reads the settings from the environment the parent was started with."""
    import os

    from bot.logs import configure, settings_secrets

    server.stop_with_parent(int(os.environ.get("SHIPMATE_SERVE_PARENT", "0")))
    settings = with_saved_credentials(load_settings())
    configure(settings.log_format, settings.log_level, known=settings_secrets(settings))
    server.HttpProtocol.configure(settings)
    with_worker = os.environ.get("SHIPMATE_SERVE_WITH_WORKER", "1") == "1"
    return web_app(settings, with_worker=with_worker)[0]


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    with_worker: bool = True,
    workers: int | None = None,
) -> int:
    """`shipmate serve`: `workers` web processes (default: SHIPMATE_WEB_PROCESSES, else
    `server.default_processes()`), the worker in the leading one unless `with_worker` is off."""
    announce()
    settings = with_saved_credentials(settings)
    if with_worker and settings.has_app_credentials:  # this process will run tasks
        require_model_credential(settings)
    server.HttpProtocol.configure(settings)
    workers = workers or settings.web_processes or server.default_processes()
    sock = server.listen(host, port)
    target: Any
    with sock:
        if workers > 1:
            target = server.for_processes(with_worker, FACTORY)
            open_database(settings)[0].dispose()  # refuse here, once, before any child starts
        else:
            target = web_app(settings, with_worker=with_worker)[0]
        return server.run(settings, target, sock=sock, workers=workers)


def run_worker(settings: Settings, *, concurrency: int | None = None) -> int:
    """`shipmate worker`: a worker alone, until SIGTERM (then it drains); `concurrency` runs at
    once, in place of SHIPMATE_WORKER_CONCURRENCY."""
    announce()
    if concurrency is not None:
        settings = settings.model_copy(update={"worker_concurrency": concurrency})
    settings = with_saved_credentials(settings)
    if settings.has_app_credentials:
        require_model_credential(settings)
    store, queue = open_database(settings)  # its refusal first: it says what to run
    try:
        require_app(settings)
    except ConfigError:
        store.dispose()
        raise

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        worker = worker_for(settings, store, queue, job_handlers(settings, store, queue))
        if isinstance(worker, Worker):  # procrastinate's logs its own, with its capacity
            log.info("worker.started", worker_id=worker.worker_id)
        await worker.run(stop)
        log.info("worker.stopped", worker_id=worker.worker_id)

    try:
        run_loop(main())
    finally:
        store.dispose()
    return 0
