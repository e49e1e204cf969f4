"""GitHub's Git database API for one repository — blobs, trees, commits, refs — through the same
retry policy, audit and outbound redaction (of commit messages) as `RepoClient`. A commit an App
creates this way, without naming a committer, is signed by GitHub and shown Verified; so Shipmate
makes its commits here, not by pushing over git smart HTTP (which branch protection's "Require
signed commits" refuses)."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import httpx
from githubkit.exception import RequestFailed

from bot.github.client import RepoClient


class RefRefused(Exception):
    """GitHub would not move (or create) the branch: it moved on, or already exists."""


@dataclass(frozen=True)
class GitCommit:
    """A commit as GitHub created it: its sha, its tree, and whether GitHub verified it."""

    sha: str
    tree: str
    verified: bool
    reason: str


class GitDatabase:
    """The Git database calls Shipmate makes on `client`'s repository."""

    def __init__(self, client: RepoClient) -> None:
        self.client = client
        self.rest = client.github.rest.git

    async def _json(self, call: Callable[[], Awaitable[Any]]) -> Any:
        return await self.client._json(call)

    async def _audited(self, action: str, target: str, **detail: Any) -> None:
        await self.client._audited(action, target, **detail)

    async def create_blob(self, content: bytes) -> str:
        """The blob's sha; base64, so any bytes (binary files, symlink targets) go as they are."""
        client, encoded = self.client, base64.b64encode(content).decode()
        answer = await self._json(
            lambda: self.rest.async_create_blob(
                client.owner, client.repo, content=encoded, encoding="base64"
            )
        )
        return str(answer["sha"])

    async def create_tree(self, base_tree: str, entries: Sequence[dict[str, Any]]) -> str:
        """`base_tree` with `entries` ({path, mode, type, sha}; sha None deletes) applied."""
        client, items = self.client, cast(Any, [dict(entry) for entry in entries])
        answer = await self._json(
            lambda: self.rest.async_create_tree(
                client.owner, client.repo, base_tree=base_tree, tree=items
            )
        )
        return str(answer["sha"])

    async def create_commit(self, message: str, tree: str, parents: Sequence[str]) -> GitCommit:
        """A commit by the App itself (no author or committer named, so GitHub signs it); its
        message passes the client's outbound redaction (the tree's files are the change itself)."""
        client, message = self.client, self.client.outbound(message)
        answer = await self._json(
            lambda: self.rest.async_create_commit(
                client.owner, client.repo, message=message, tree=tree, parents=list(parents)
            )
        )
        verification = answer.get("verification") or {}
        commit = GitCommit(
            str(answer["sha"]),
            str((answer.get("tree") or {}).get("sha", "")),
            bool(verification.get("verified")),
            str(verification.get("reason", "")),
        )
        await self._audited("git.commit", f"@{commit.sha}", verified=commit.verified)
        return commit

    async def create_branch(self, branch: str, sha: str) -> None:
        """A new branch at `sha`; RefRefused when the branch already exists."""
        client = self.client
        await self._refusable(
            lambda: self.rest.async_create_ref(
                client.owner, client.repo, ref=f"refs/heads/{branch}", sha=sha
            )
        )
        await self._audited("git.ref.create", f":{branch}", sha=sha)

    async def move_branch(self, branch: str, sha: str) -> None:
        """`branch` moves to `sha` only by a fast-forward (never `force`); RefRefused else."""
        client = self.client
        await self._refusable(
            lambda: self.rest.async_update_ref(
                client.owner, client.repo, f"heads/{branch}", sha=sha, force=False
            )
        )
        await self._audited("git.ref.update", f":{branch}", sha=sha)

    async def _refusable(self, call: Callable[[], Awaitable[Any]]) -> None:
        try:
            await self._json(call)
        except RequestFailed as exc:
            if exc.response.status_code == 422:
                raise RefRefused(_message(exc.response.raw_response)) from None
            raise


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or "refused")
    except ValueError:
        return response.text[:200] or "refused"
