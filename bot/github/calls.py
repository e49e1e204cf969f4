"""What every group of `RepoClient`'s calls shares: the repository, the retry policy each call
goes through, the audit each write is reported to, and the outbound redaction every text it
sends passes (`bot.security.redact.Outbound`: secrets, mentions, links), applied here once."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import structlog
from githubkit import GitHub
from githubkit.exception import RequestFailed

from bot.github.replies import Replies
from bot.github.retry import RetryPolicy
from bot.security.redact import Outbound

log = structlog.get_logger("shipmate.github")

# (action, target, detail): called after each write succeeded; bot.db.audit.StoreAudit records it.
AuditHook = Callable[[str, str, Mapping[str, Any]], Awaitable[None]]

# GitHub's largest page; a shorter one is the last.
PAGE = 100


def status_of(exc: RequestFailed) -> int:
    return exc.response.status_code


class RepoCalls:
    """One repository ("owner/name") on `github`, each call through `retry`, each write
    reported to `audit`; `replies` (a delivery's job) posts each comment once. Every text a
    write sends for people to read passes `outbound` (the caller's, which knows its secrets and
    may learn more; by default the scanner's rules and links to GitHub only)."""

    def __init__(
        self,
        github: GitHub[Any],
        repository: str,
        retry: RetryPolicy | None = None,
        audit: AuditHook | None = None,
        replies: Replies | None = None,
        outbound: Outbound | None = None,
    ) -> None:
        self.github = github
        self.replies = replies
        self.owner, self.repo = repository.split("/", 1)
        self.full_name = repository
        self.retry = retry or RetryPolicy()
        self.audit = audit
        self.outbound = Outbound() if outbound is None else outbound

    async def _audited(self, action: str, target: str, **detail: Any) -> None:
        if self.audit is not None:
            await self.audit(action, f"{self.full_name}{target}", detail)

    async def _json(self, call: Callable[[], Awaitable[Any]]) -> Any:
        response = await self.retry.call(call)
        return response.raw_response.json()

    async def _json_or_none(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """The answer, or None on 404."""
        try:
            return await self._json(call)
        except RequestFailed as exc:
            if status_of(exc) == 404:
                return None
            raise

    async def _pages(
        self,
        list_page: Callable[[int], Awaitable[Any]],
        *,
        max_pages: int | None = None,
        key: str | None = None,
    ) -> list[Any]:
        """Every item of a listing `list_page(page)` (of `PAGE` items a page), page by page
        until a short one, or up to `max_pages`; `key` names the list in an answer that is an
        object (`{"total_count": N, "check_runs": [...]}`)."""
        found: list[Any] = []
        pages: Iterable[int] = itertools.count(1) if max_pages is None else range(1, max_pages + 1)
        for page in pages:
            answer = await self._json(functools.partial(list_page, page))
            batch = answer if key is None else answer.get(key) or []
            found.extend(batch)
            if len(batch) < PAGE:
                break
        return found
