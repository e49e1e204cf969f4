"""A run started from GitHub, from checkout to pull request: the `run` job.

Each step gets the least token it needs: a read-only one for the checkout and for reading, one
that may write issues and pull requests for the conversation (the sticky comment, review
replies), and one that may write contents only at push time, never for a plan. The agent sees
none of them. One sticky comment per task is edited as the task goes (queued -> planning ->
running with the plan -> running tests -> done/failed), and a `Shipmate` check run on the new
head carries the same summary. Every text posted passes outbound redaction with the secrets this
run knows (`run.clean`, which each of its clients applies). Shipmate opens pull requests; it
never merges, never force-pushes and never pushes to the default branch.

The steps, each in its module: the run's identity and clients (bot/runs/context.py), its start
(bot/runs/start.py), its work (bot/runs/work.py), its end (bot/runs/finish.py), what it publishes
(bot/runs/pulls.py), the check run (bot/runs/checks.py), and `apply --large`
(bot/runs/apply_held.py).
"""

from __future__ import annotations

import asyncio

import structlog

from bot.github.client import outbound_for
from bot.jobs.queue import Job
from bot.jobs.worker import JobContext, JobRejected
from bot.runs.apply_held import publish_held
from bot.runs.attempts import Attempts, begin_attempt, job_key, run_marker
from bot.runs.context import (
    CONVERSE,
    READ_ONLY,
    Run,
    RunDeps,
    Sticky,
    bot_login,
    client_for,
    lock_key,
    sticky_key,
)
from bot.runs.request import BadRunRequest, RunRequest
from bot.runs.start import start

# What the queue and the app take from here (bot/runs/tasks.py, bot/app.py).
__all__ = ["RunDeps", "lock_key", "run_job", "sticky_key"]
log = structlog.get_logger("shipmate.runs")


async def run_job(job: Job, context: JobContext, deps: RunDeps) -> None:
    try:
        request = RunRequest.from_payload(job.payload)
    except BadRunRequest as exc:
        # Retrying cannot mend it: the job fails now, saying why (see JobRejected).
        raise JobRejected(f"not a run request: {exc}") from None
    key = job_key(request, job.id)
    attempts = await asyncio.to_thread(begin_attempt, deps.store, key, job.attempts)
    if attempts.finished is not None:
        log.info("run.already_finished", run_id=attempts.finished)
        return  # an earlier attempt finished the run, and was killed before the job was done
    run = await new_run(deps, request, key, attempts)
    if request.task.publish is not None:
        await publish_held(run, request.task.publish)
        return
    await start(run, await run.client(READ_ONLY), context)


async def new_run(deps: RunDeps, request: RunRequest, key: str, attempts: Attempts) -> Run:
    """The attempt's `Run`: its id, its clients, and the job's sticky comment."""
    clean = outbound_for(deps.settings)
    talker = await client_for(deps, request.installation_id, request.repo, clean, CONVERSE)
    sticky = Sticky(
        talker,
        request.number,
        request.sticky_comment_id,
        mark=run_marker(key),
        retried=attempts.retried,
        author=bot_login(deps.settings),
    )
    return Run(
        deps,
        attempts.run_id,
        request.repo,
        request.number,
        request.verb,
        request.installation_id,
        request,
        clean,
        talker,
        sticky,
        job_key=key,
        earlier=attempts.earlier,
        retried=attempts.retried,
        earlier_base=attempts.base_sha,
    )
