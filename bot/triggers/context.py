"""The one object a handler receives (Probot's context): the event, who and where, a GitHub
client for the installation, a bound logger, the repository's config, and the queue."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from githubkit import GitHub

from bot.config import RepoConfig, Settings, parse_repo_config
from bot.db.audit import StoreAudit
from bot.db.store import Store
from bot.github.client import HANDLER, Outbound, RepoClient, outbound_for
from bot.github.replies import Replies
from bot.jobs.queue import Queue


class ClientFactory(Protocol):
    """Installation clients for one repository; `permissions` narrows the token (default: what
    a handler may do, `HANDLER`)."""

    def __call__(
        self,
        installation_id: int,
        repository: str | None,
        permissions: Mapping[str, str] | None = None,
    ) -> Awaitable[GitHub[Any]]: ...


@dataclass
class Context:
    event: str
    action: str | None
    delivery_id: str
    payload: dict[str, Any]
    installation_id: int | None
    repository: str | None
    log: Any
    settings: Settings
    store: Store
    queue: Queue
    client_factory: ClientFactory | None = None
    # The job's attempt: past the first, an earlier one may have acted already.
    attempt: int = 1
    _github: GitHub[Any] | None = field(default=None, repr=False)
    _config: RepoConfig | None = field(default=None, repr=False)
    _replies: Replies | None = field(default=None, repr=False)
    _earlier: list[dict[str, Any]] | None = field(default=None, repr=False)
    _outbound: Outbound | None = field(default=None, repr=False)

    @property
    def sender(self) -> str:
        sender = self.payload.get("sender") or {}
        return str(sender.get("login") or "")

    @property
    def sender_is_bot(self) -> bool:
        sender = self.payload.get("sender") or {}
        return sender.get("type") == "Bot" or self.sender.endswith("[bot]")

    async def github(self) -> GitHub[Any]:
        """A client for this installation, scoped to this repository and read permissions."""
        if self._github is None:
            if self.client_factory is None or self.installation_id is None:
                raise RuntimeError("this delivery has no installation to act for")
            self._github = await self.client_factory(self.installation_id, self.repository)
        return self._github

    @property
    def outbound(self) -> Outbound:
        """The outbound redaction every client of this context applies to what it posts."""
        if self._outbound is None:
            self._outbound = outbound_for(self.settings)
        return self._outbound

    async def repo(self) -> RepoClient:
        if self.repository is None:
            raise RuntimeError("this delivery has no repository")
        return await self._client(await self.github(), self.repository)

    async def repo_named(self, repository: str) -> RepoClient:
        """A client for `repository`, one of those this installation event names; never
        cached."""
        if self.client_factory is None or self.installation_id is None:
            raise RuntimeError("this delivery has no installation to act for")
        github = await self.client_factory(self.installation_id, repository)
        return await self._client(github, repository)

    async def _client(self, github: GitHub[Any], repository: str) -> RepoClient:
        """Each write audited and, for a job run again, posted once (bot/github/replies.py)."""
        return RepoClient(
            github,
            repository,
            audit=StoreAudit(self.store),
            replies=await self.replies(),
            outbound=self.outbound,
        )

    async def earlier_actions(self) -> list[dict[str, Any]]:
        """What an earlier attempt of this delivery's job did on GitHub and to the queue (its
        audit rows); nothing on a first attempt."""
        if self._earlier is None:
            self._earlier = []
            if self.attempt > 1:
                self._earlier = await asyncio.to_thread(
                    self.store.audit_for_delivery, self.delivery_id
                )
        return self._earlier

    async def replies(self) -> Replies:
        """This delivery's comments, one `Replies` for every client of this context."""
        if self._replies is None:
            posted = [
                int(row["detail"]["comment_id"])
                for row in await self.earlier_actions()
                if row["action"] == "comment.create" and "comment_id" in (row["detail"] or {})
            ]
            author = f"{self.settings.app_slug or 'shipmate'}[bot]"
            self._replies = Replies(
                self.delivery_id, retried=self.attempt > 1, earlier=posted, author=author
            )
        return self._replies

    async def repo_with(self, permissions: Mapping[str, str]) -> RepoClient:
        """A client whose token carries only `permissions`, for the one step that needs more
        than a handler may (re-running a workflow's jobs); never cached."""
        if self.client_factory is None or self.installation_id is None:
            raise RuntimeError("this delivery has no installation to act for")
        if self.repository is None:
            raise RuntimeError("this delivery has no repository")
        github = await self.client_factory(self.installation_id, self.repository, permissions)
        return await self._client(github, self.repository)

    async def config(self) -> RepoConfig:
        """`.github/shipmate.yml` from the default branch only; defaults when absent.

        Raises `RepoConfigError` when the file is invalid.
        """
        if self._config is None:
            repository = self.payload.get("repository") or {}
            repo = await self.repo()
            branch = repository.get("default_branch") or await repo.default_branch()
            self._config = parse_repo_config(await repo.file_text(".github/shipmate.yml", branch))
        return self._config


__all__ = ["HANDLER", "ClientFactory", "Context"]
