"""Pull requests: opening and editing them, finding them by branch or commit, their files and
review comments."""

from __future__ import annotations

from typing import Any

from bot.github.calls import PAGE, RepoCalls
from bot.github.models import PullRequest, ReviewComment


class PullCalls(RepoCalls):
    async def create_pull(
        self, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequest:
        rest, o, r = self.github.rest, self.owner, self.repo
        title, body = self.outbound(title), self.outbound(body)
        pull = PullRequest.of(
            await self._json(
                lambda: rest.pulls.async_create(
                    o, r, head=head, base=base, title=title, body=body, draft=draft
                )
            )
        )
        await self._audited("pull_request.create", f"#{pull.number}", head=head, base=base)
        return pull

    async def update_pull(
        self, number: int, *, title: str | None = None, body: str | None = None
    ) -> PullRequest:
        rest, o, r = self.github.rest, self.owner, self.repo
        fields = (("title", title), ("body", body))
        payload = {k: self.outbound(v) for k, v in fields if v is not None}
        pull = PullRequest.of(
            await self._json(lambda: rest.pulls.async_update(o, r, number, data=payload))  # type: ignore[call-overload]
        )
        await self._audited("pull_request.update", f"#{number}", fields=sorted(payload))
        return pull

    async def pull(self, number: int) -> PullRequest | None:
        data = await self.pull_data(number)
        return None if data is None else PullRequest.of(data)

    async def pull_data(self, number: int) -> dict[str, Any] | None:
        """The pull request as GitHub sends it (author, head, merge state), or None on 404."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data: dict[str, Any] | None = await self._json_or_none(
            lambda: rest.pulls.async_get(o, r, number)
        )
        return data

    async def open_pulls_for_branch(self, branch: str) -> list[PullRequest]:
        """Open PRs whose head is `branch` in this repository."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json(
            lambda: rest.pulls.async_list(o, r, state="open", head=f"{o}:{branch}", per_page=PAGE)
        )
        return [PullRequest.of(d) for d in data]

    async def open_pulls_headed(self, prefix: str, *, max_pages: int = 5) -> list[dict[str, Any]]:
        """Open PRs (as GitHub sends them) whose head branch starts with `prefix`, newest
        first, from the newest `max_pages` hundred open PRs."""
        rest, o, r = self.github.rest, self.owner, self.repo
        found = await self._pages(
            lambda page: rest.pulls.async_list(
                o, r, state="open", sort="created", direction="desc", per_page=PAGE, page=page
            ),
            max_pages=max_pages,
        )
        return [p for p in found if str(p["head"]["ref"]).startswith(prefix)]

    async def pulls_for_commit(self, sha: str) -> list[dict[str, Any]]:
        """The pull requests a commit belongs to: open ones it is the head of, and merged ones
        it came from (GET commits/{sha}/pulls)."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json_or_none(
            lambda: rest.repos.async_list_pull_requests_associated_with_commit(
                o, r, sha, per_page=PAGE
            )
        )
        return list(data or [])

    async def pull_files(self, number: int) -> list[str]:
        """The paths a pull request changes (GitHub lists up to 3,000)."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json(lambda: rest.pulls.async_list_files(o, r, number, per_page=PAGE))
        return [str(d.get("filename", "")) for d in data]

    async def review_comments(self, number: int, review_id: int) -> list[ReviewComment]:
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json(
            lambda: rest.pulls.async_list_comments_for_review(
                o, r, number, review_id, per_page=PAGE
            )
        )
        return [ReviewComment.of(d) for d in data]

    async def pull_review_comments(self, number: int) -> list[ReviewComment]:
        """Every review comment on a pull request, replies included."""
        rest, o, r = self.github.rest, self.owner, self.repo
        found = await self._pages(
            lambda page: rest.pulls.async_list_review_comments(
                o, r, number, per_page=PAGE, page=page
            )
        )
        return [ReviewComment.of(d) for d in found]

    async def reply_to_review_comment(self, number: int, comment_id: int, body: str) -> int:
        rest, o, r = self.github.rest, self.owner, self.repo
        body = self.outbound(body)
        data = await self._json(
            lambda: rest.pulls.async_create_reply_for_review_comment(
                o, r, number, comment_id, data={"body": body}
            )
        )
        await self._audited("review_comment.reply", f"#{number}", comment_id=data["id"])
        return int(data["id"])
