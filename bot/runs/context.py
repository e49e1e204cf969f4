"""One run started from GitHub: who it is (its ids, keys and dashboard page), what it posts with
(the least token each step needs, outbound redaction) and its one sticky comment; and `Ending`,
what its last steps work from."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.agent.model import AnthropicModel, Model
from bot.config import Settings
from bot.db.store import Store
from bot.github.client import GitHubApp, Outbound, RepoClient
from bot.github.replies import Replies, written_by
from bot.runs.execution import Execution
from bot.runs.render import Progress, sticky_comment
from bot.runs.request import RunRequest
from bot.sandbox.checkout import CheckoutCache

READ_ONLY: Mapping[str, str] = {
    "metadata": "read",
    "contents": "read",
    "issues": "read",
    "pull_requests": "read",
}
CONVERSE: Mapping[str, str] = {"metadata": "read", "issues": "write", "pull_requests": "write"}
PUBLISH: Mapping[str, str] = {
    "metadata": "read",
    "contents": "write",
    "pull_requests": "write",
    "checks": "write",
}
CHECKS: Mapping[str, str] = {"metadata": "read", "checks": "write"}


def lock_key(repo: str, number: int) -> str:
    return f"{repo}#{number}"


def sticky_key(repo: str, number: int) -> str:
    """The key in the marker of the task's sticky comment: `owner-name-number`."""
    return f"{repo.replace('/', '-')}-{number}"


def bot_login(settings: Settings) -> str:
    """The login Shipmate's App posts as."""
    return f"{settings.app_slug or 'shipmate'}[bot]"


@dataclass
class RunDeps:
    settings: Settings
    store: Store
    app: GitHubApp
    cache: CheckoutCache
    model_factory: Any = None  # () -> Model; the Anthropic model by default

    def model(self) -> Model:
        if self.model_factory is not None:
            return self.model_factory()  # type: ignore[no-any-return]
        return AnthropicModel.from_settings(self.settings)


class Sticky:
    """The task's one comment, edited in place (through `repo`, whose outbound redaction every
    text passes). Each body ends with the job's hidden `mark`: a retried job (`retried`) that
    knows no comment yet takes the one an earlier attempt posted, when `author` (Shipmate's
    bot, never anyone else) wrote it with that mark, rather than post a second."""

    def __init__(
        self,
        repo: RepoClient,
        number: int,
        comment_id: int | None,
        *,
        mark: str = "",
        retried: bool = False,
        author: str = "shipmate[bot]",
    ) -> None:
        self.repo, self.number, self.comment_id = repo, number, comment_id
        self.mark, self.retried, self.author = mark, retried, author

    async def show(self, progress: Progress) -> None:
        body = sticky_comment(progress)
        if self.mark:
            body = f"{body}\n{self.mark}"
        if self.comment_id is None and self.retried and self.mark:
            self.comment_id = await self.posted_before()
        if self.comment_id is None:
            self.comment_id = await self.repo.comment(self.number, body)
        else:
            await self.repo.edit_comment(self.comment_id, body)

    async def posted_before(self) -> int | None:
        """The comment an earlier attempt of the job posted, found by its mark."""
        for comment in await self.repo.comments(self.number):
            if written_by(comment, self.author) and self.mark in comment.body.splitlines():
                return comment.id
        return None


@dataclass
class Run:
    """One run's identity and the clients it posts with."""

    deps: RunDeps
    run_id: str
    repo_name: str
    number: int
    verb: str
    installation_id: int
    request: RunRequest
    clean: Outbound
    talker: RepoClient
    sticky: Sticky
    # The job's key, the same for each of its attempts (bot/runs/attempts.py): its check
    # runs' external_id, its sticky comment's mark, its new branch's name.
    job_key: str = ""
    # The run ids of the job's earlier attempts, and whether one may have acted on GitHub.
    earlier: tuple[str, ...] = ()
    retried: bool = False
    # The commit the earlier attempts started from, which a retry starts from too.
    earlier_base: str | None = None
    # The in-progress `Shipmate` check run (with its Stop button) of a run on a pull request.
    live_check: int | None = None

    @property
    def url(self) -> str | None:
        """The run's dashboard page, when Shipmate knows its public address."""
        public = self.deps.settings.public_url
        return f"{public.rstrip('/')}/dashboard/runs/{self.run_id}" if public else None

    @property
    def key(self) -> str:
        return sticky_key(self.repo_name, self.number)

    def progress(self, stage: str, **extra: Any) -> Progress:
        extra.setdefault("run_url", self.url)
        return Progress(key=self.key, verb=self.verb, stage=stage, **extra)  # type: ignore[arg-type]

    async def fail(self, reason: str) -> None:
        """The sticky comment says the run failed, and why."""
        await self.sticky.show(self.progress("failed", reason=reason))

    async def token(self, permissions: Mapping[str, str]) -> str:
        return await mint(self.deps, self.installation_id, self.repo_name, self.clean, permissions)

    @property
    def author(self) -> str:
        return bot_login(self.deps.settings)

    async def client(self, permissions: Mapping[str, str]) -> RepoClient:
        """A client whose check runs carry the job's key, so that a retried job updates the
        one an earlier attempt created (bot/github/replies.py)."""
        replies = Replies(self.job_key, retried=self.retried, author=self.author)
        return await client_for(
            self.deps, self.installation_id, self.repo_name, self.clean, permissions, replies
        )

    async def audit(self, action: str, target: str, **detail: Any) -> None:
        await asyncio.to_thread(
            self.deps.store.append_audit,
            action,
            run_id=self.run_id,
            actor="shipmate",
            target=target,
            detail=detail or None,
        )


async def mint(
    deps: RunDeps,
    installation_id: int,
    repo_name: str,
    clean: Outbound,
    permissions: Mapping[str, str],
) -> str:
    """A token for this repository only, known to outbound redaction from now on."""
    minted = await deps.app.installation_token(
        installation_id, repositories=[repo_name], permissions=permissions
    )
    clean.add(minted.token)
    return minted.token


async def client_for(
    deps: RunDeps,
    installation_id: int,
    repo_name: str,
    clean: Outbound,
    permissions: Mapping[str, str],
    replies: Replies | None = None,
) -> RepoClient:
    """A client for this repository with `permissions`, redacting what it posts with `clean`
    (which knows its token); `replies` keys what it creates for a job run again."""
    await mint(deps, installation_id, repo_name, clean, permissions)
    github = await deps.app.installation_client(
        installation_id, repository=repo_name, permissions=permissions
    )
    return RepoClient(github, repo_name, outbound=clean, replies=replies)


@dataclass(frozen=True)
class Ending:
    """What a run's last steps (bot/runs/finish.py, bot/runs/pulls.py) work from: the run, its
    result, the commit it started from, the default branch, the issue it answers, and the fields
    every final `Progress` of it shares."""

    run: Run
    done: Execution
    base_sha: str
    default_branch: str
    issue: dict[str, Any]
    common: dict[str, Any]
