"""The one retry policy for GitHub calls: which failures to retry and how long to wait.

It wraps each call with tenacity rather than plugging into githubkit's `auto_retry` hook: the
wrapper also covers the installation-token request that runs inside the auth flow, its
`sleep` can be injected so tests observe the exact waits, and its attempts and maximum wait are
ours to bound. githubkit's own auto-retry is therefore off on every client we build, so retries
are never doubled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx
import structlog
from githubkit.exception import GitHubException, RequestError, RequestFailed
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

log = structlog.get_logger("shipmate.github")

T = TypeVar("T")

# GitHub asks for at least a minute after a secondary limit that names no wait.
SECONDARY_LIMIT_WAIT = 60.0


def root_cause(exc: BaseException) -> BaseException:
    """githubkit wraps whatever the auth flow raised (e.g. a failed token request) in a
    `RequestError`; judge the innermost GitHub error, not the wrapper."""
    while (
        type(exc) is RequestError
        and isinstance(exc.exc, BaseException)
        and isinstance(exc.exc, GitHubException | httpx.TransportError)
    ):
        exc = exc.exc
    return exc


def rate_limited(response: httpx.Response) -> bool:
    """GitHub's primary or secondary rate limit, as opposed to a 403 that will not change.
    A 429 always is one, even bare (no headers, a plain "Too Many Requests")."""
    return response.status_code == 429 or (response.status_code == 403 and _limit_signs(response))


def _limit_signs(response: httpx.Response) -> bool:
    """The answer says when to retry, or is the secondary limit's text."""
    return _says_when(response) or _secondary_text(response)


def _says_when(response: httpx.Response) -> bool:
    headers = response.headers
    return bool(headers.get("retry-after")) or headers.get("x-ratelimit-remaining") == "0"


def _secondary_text(response: httpx.Response) -> bool:
    text = response.text.lower()
    return "secondary rate limit" in text or "abuse detection" in text


def _retry_after_seconds(value: str, now: float) -> float | None:
    """`Retry-After` is seconds or an HTTP date."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - now
    except (TypeError, ValueError):
        return None


class RetryPolicy:
    """When and how long to wait before retrying a GitHub call.

    Retried: 5xx, connection errors and timeouts, primary limits (wait until
    `x-ratelimit-reset`), secondary limits (wait `Retry-After`, else 60 s), a bare 429 that
    says nothing of when (exponential backoff, as for a 5xx). Never retried: any
    other 4xx (401, 404, 422, a 403 without rate-limit signs). Waits are capped at `max_wait`.
    """

    def __init__(
        self,
        *,
        attempts: int = 5,
        max_wait: float = 900.0,
        base: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.attempts = attempts
        self.max_wait = max_wait
        self.base = base
        self.sleep = sleep
        self.clock = clock

    def retryable(self, exc: BaseException) -> bool:
        if type(exc) is RequestError and isinstance(exc.exc, GitHubException):
            # A token request that failed inside the auth flow: it had its own retries already.
            return False
        exc = root_cause(exc)
        if isinstance(exc, RequestFailed):
            response = exc.response.raw_response
            return response.status_code >= 500 or rate_limited(response)
        if isinstance(exc, RequestError):  # timeouts and connection errors carry no response
            return isinstance(exc.exc, httpx.TransportError)
        return isinstance(exc, httpx.TransportError)

    def wait_for(self, exc: BaseException | None, attempt: int, now: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        now = self.clock() if now is None else now
        exc = root_cause(exc) if exc is not None else None
        response = exc.response.raw_response if isinstance(exc, RequestFailed) else None
        if response is not None and response.status_code in (403, 429) and _limit_signs(response):
            headers = response.headers
            seconds: float | None = None
            if retry_after := headers.get("retry-after"):
                seconds = _retry_after_seconds(retry_after, now)
            reset = headers.get("x-ratelimit-reset")
            if seconds is None and reset and headers.get("x-ratelimit-remaining") == "0":
                # One second past the reset: GitHub's clock and ours are not in lockstep.
                seconds = float(reset) - now + 1
            if seconds is None:
                seconds = SECONDARY_LIMIT_WAIT
            return min(self.max_wait, max(0.0, seconds))
        return float(min(self.max_wait, self.base * 2 ** (attempt - 1)))

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        seconds = self.wait_for(exc, state.attempt_number)
        status = None
        cause = root_cause(exc) if exc is not None else None
        if isinstance(cause, RequestFailed):
            status = cause.response.status_code
        log.warning(
            "github.retry",
            attempt=state.attempt_number,
            status=status,
            error=type(cause).__name__,
            wait_seconds=round(seconds, 3),
        )
        return seconds

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run `fn` (a fresh request each time) until it succeeds or the policy gives up; a
        call that fails for good is logged with its method, route and status."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(self.retryable),
            wait=self._wait,
            stop=stop_after_attempt(self.attempts),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await fn()
        except Exception as exc:
            log_failure(exc)
            raise
        raise AssertionError("unreachable")  # pragma: no cover


def log_failure(exc: BaseException) -> None:
    """One line for a GitHub call that failed for good: method, route (the URL's path, never
    its query or headers) and status; a 404 at info (callers often expect one: a file or
    branch that is not there), anything else as a warning."""
    cause = root_cause(exc)
    request: httpx.Request | None = None
    status: int | None = None
    if isinstance(cause, RequestFailed):
        request, status = cause.response.raw_response.request, cause.response.status_code
    else:
        transport = cause.exc if isinstance(cause, RequestError) else cause
        if isinstance(transport, httpx.TransportError):
            try:
                request = transport.request
            except RuntimeError:  # raised before it had a request
                request = None
    emit = log.info if status == 404 else log.warning
    emit(
        "github.failed",
        method=request.method if request is not None else None,
        route=request.url.path if request is not None else None,
        status=status,
        error=type(cause).__name__,
    )
