"""The repository itself: its settings, branches, files and who may write to it."""

from __future__ import annotations

import base64
from typing import Any

from bot.github.calls import RepoCalls
from bot.github.models import PERMISSIONS, Permission


class ContentCalls(RepoCalls):
    async def repository(self) -> dict[str, Any]:
        rest, o, r = self.github.rest, self.owner, self.repo
        return dict(await self._json(lambda: rest.repos.async_get(o, r)))

    async def default_branch(self) -> str:
        return str((await self.repository())["default_branch"])

    async def branch_sha(self, branch: str) -> str | None:
        """The branch's head commit, or None when there is no such branch."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json_or_none(lambda: rest.repos.async_get_branch(o, r, branch))
        return None if data is None else str(data["commit"]["sha"])

    async def file_text(self, path: str, ref: str) -> str | None:
        """A file's text at `ref`, or None when it does not exist there (or is not a file)."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json_or_none(lambda: rest.repos.async_get_content(o, r, path, ref=ref))
        if not isinstance(data, dict) or data.get("type") != "file":
            return None
        return base64.b64decode(data.get("content") or "").decode("utf-8", errors="replace")

    async def permission(self, login: str) -> Permission:
        """admin, maintain, write, triage, read or none (the collaborator permission API)."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json_or_none(
            lambda: rest.repos.async_get_collaborator_permission_level(o, r, login)
        )
        if data is None:
            return "none"
        # `permission` folds maintain into write and triage into read; `role_name` does not.
        for value in (data.get("role_name"), data.get("permission")):
            if value in PERMISSIONS:
                return value  # type: ignore[no-any-return]
        return "none"
