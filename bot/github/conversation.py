"""The conversation on an issue or pull request: the issue, its comments, reactions, labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from githubkit.exception import RequestError, RequestFailed

from bot.github.calls import PAGE, RepoCalls, log
from bot.github.models import Comment, Reaction
from bot.github.replies import marked


class ConversationCalls(RepoCalls):
    async def issue(self, number: int) -> dict[str, Any]:
        """The issue (or pull request, as an issue) as GitHub sends it: title, body, author."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data: dict[str, Any] = await self._json(lambda: rest.issues.async_get(o, r, number))
        return data

    async def comment(self, number: int, body: str) -> int:
        """Comment on an issue or PR; the new comment's id (or, for a delivery's job run
        again, the id of the one an earlier attempt posted)."""
        rest, o, r = self.github.rest, self.owner, self.repo
        body = self.outbound(body)
        if self.replies is not None:
            key, known = self.replies.next()
            if known is None and self.replies.retried:
                thread = await self.comments(number)
                mine = (c.id for c in thread if self.replies.posted_by_us(c, key))
                known = next(mine, None)
            if known is not None:
                return known
            body = marked(body, key)
        data = await self._json(
            lambda: rest.issues.async_create_comment(o, r, number, data={"body": body})
        )
        await self._audited("comment.create", f"#{number}", comment_id=data["id"])
        return int(data["id"])

    async def edit_comment(self, comment_id: int, body: str) -> None:
        rest, o, r = self.github.rest, self.owner, self.repo
        body = self.outbound(body)
        await self._json(
            lambda: rest.issues.async_update_comment(o, r, comment_id, data={"body": body})
        )
        await self._audited("comment.edit", f" comment {comment_id}")

    async def comments(self, number: int) -> list[Comment]:
        """Every comment on an issue or PR, oldest first."""
        rest, o, r = self.github.rest, self.owner, self.repo
        found = await self._pages(
            lambda page: rest.issues.async_list_comments(o, r, number, per_page=PAGE, page=page)
        )
        return [Comment.of(d) for d in found]

    async def react(self, comment_id: int, content: Reaction = "eyes") -> None:
        """A reaction on an issue or PR comment."""
        rest, o, r = self.github.rest, self.owner, self.repo
        await self._json(
            lambda: rest.reactions.async_create_for_issue_comment(
                o, r, comment_id, data={"content": content}
            )
        )
        await self._audited("reaction.create", f" comment {comment_id}", content=content)

    async def react_eyes(self, comment_id: int) -> None:
        """👀 on a comment: "seen, working on it". A courtesy: when GitHub refuses it (the
        comment is gone: 404) or cannot take it now, the work goes on without it."""
        try:
            await self.react(comment_id, "eyes")
        except (RequestFailed, RequestError) as exc:
            log.info("github.reaction_skipped", comment_id=comment_id, error=type(exc).__name__)

    async def react_issue(self, number: int, content: Reaction = "eyes") -> None:
        """A reaction on the issue or PR itself."""
        rest, o, r = self.github.rest, self.owner, self.repo
        await self._json(
            lambda: rest.reactions.async_create_for_issue(o, r, number, data={"content": content})
        )
        await self._audited("reaction.create", f"#{number}", content=content)

    async def add_labels(self, number: int, labels: Sequence[str]) -> None:
        rest, o, r = self.github.rest, self.owner, self.repo
        await self._json(
            lambda: rest.issues.async_add_labels(o, r, number, data={"labels": list(labels)})
        )
        await self._audited("label.add", f"#{number}", labels=list(labels))

    async def remove_label(self, number: int, label: str) -> None:
        """Remove a label; already gone is fine."""
        rest, o, r = self.github.rest, self.owner, self.repo
        await self._json_or_none(lambda: rest.issues.async_remove_label(o, r, number, label))
        await self._audited("label.remove", f"#{number}", label=label)
