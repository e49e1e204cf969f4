"""How Shipmate's jobs meet procrastinate's worker: the connection its pool opens, and our
retry policy in its terms."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import psycopg
from procrastinate import exceptions as procrastinate_exceptions
from procrastinate import jobs as procrastinate_jobs
from procrastinate.retry import BaseRetryStrategy, RetryDecision
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from bot.jobs.procrastinate_queue import MAX_ATTEMPTS_ARG
from bot.jobs.queue import backoff_seconds
from bot.jobs.worker import JobRejected


def conninfo(url: str) -> str:
    """libpq's form of a SQLAlchemy URL, for procrastinate's own pool. Its job transitions
    (fetch, finish, retry, heartbeat) commit without waiting for the WAL flush: a crash of
    PostgreSQL itself can undo the last few hundred ms of them, which leaves a job waiting or
    running again, the same as a killed worker, and recovery runs it again. Deliveries and the
    jobs handlers enqueue go through the store's engine, whose commits are durable."""
    parsed = make_url(url)
    params: dict[str, Any] = parsed.translate_connect_args(username="user", database="dbname")
    params.update({key: str(value) for key, value in parsed.query.items()})
    params["options"] = " ".join(filter(None, [params.get("options"), SYNC_OFF]))
    return make_conninfo(**params)


SYNC_OFF = "-csynchronous_commit=off"


async def autocommit(connection: psycopg.AsyncConnection[Any]) -> None:
    # Each of procrastinate's statements is one call of its SQL functions: no BEGIN/COMMIT
    # around it, one round trip instead of three.
    await connection.set_autocommit(True)


def attempt_limit(arguments: Mapping[str, Any], default: int) -> int:
    """A job's attempts: its own (`enqueue(max_attempts=...)`) or the settings'."""
    own = arguments.get(MAX_ATTEMPTS_ARG)
    return own if isinstance(own, int) and own > 0 else default


class Retry(BaseRetryStrategy):
    """Our retry policy in procrastinate's terms: exponential backoff with full jitter, up to
    the job's attempts; a job released at shutdown comes back at once, a `JobRejected` one is
    dead at once."""

    def __init__(self, max_attempts: int) -> None:
        self.max_attempts = max_attempts

    def get_retry_decision(
        self, *, exception: BaseException, job: procrastinate_jobs.Job
    ) -> RetryDecision | None:
        now = datetime.datetime.now(datetime.UTC)
        if isinstance(exception, procrastinate_exceptions.JobAborted):
            # procrastinate asks only about an abort of its shutdown: release it.
            return RetryDecision(retry_at=now)
        if isinstance(exception, JobRejected):
            return None  # no retry would mend it: dead at once
        limit = attempt_limit(job.task_kwargs, self.max_attempts)
        attempt = job.attempts + 1  # procrastinate counts the attempts before this one
        if attempt >= limit:
            return None
        delay = datetime.timedelta(seconds=backoff_seconds(attempt))
        return RetryDecision(retry_at=now + delay)
