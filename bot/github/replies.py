"""Comments and check runs a delivery posts, posted once even when its job runs again.

A job can run again after it posted: its worker was killed (or lost its lease) after the
comment went out and before the job was marked done, or a later step failed and the job was
retried. GitHub takes no idempotency key for a comment, so each comment a delivery posts
carries a hidden key, its delivery id and its place among that delivery's comments
(`<!-- shipmate:reply ID/N -->`). On a job's later attempt, the n-th comment is not posted
again when an earlier attempt posted it: its id is known from the audit trail (written just
after the post), or, for a kill between the post and that row, found by its key on the
thread. A first attempt posts without looking.

A check run carries the delivery id as its `external_id`; a later attempt looks on the commit
for Shipmate's check run of that name with that id, and updates it rather than add a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.github.models import CheckRun, Comment


def written_by(comment: Comment, bot: str) -> bool:
    """Whether the App whose bot's login is `bot` (`<app_slug>[bot]`) wrote `comment`: that
    login (no person's can end in `[bot]`), and GitHub says a Bot. Whoever may comment can copy
    a hidden marker, so state read back from a comment's body counts only in ours."""
    return comment.user == bot and comment.user_type == "Bot"


def reply_key(delivery_id: str, place: int) -> str:
    return f"<!-- shipmate:reply {delivery_id}/{place} -->"


@dataclass
class Replies:
    """The comments of one delivery's job. `retried`: an earlier attempt may have posted;
    `earlier`: the ids of the comments it is known to have posted, in order; `author`: the
    login those comments are posted as (a key in anyone else's comment counts for nothing)."""

    delivery_id: str
    retried: bool = False
    earlier: Sequence[int] = ()
    author: str = "shipmate[bot]"
    posted: int = field(default=0, init=False)

    def next(self) -> tuple[str, int | None]:
        """The next comment's key, and its id when an earlier attempt is known to have
        posted it."""
        self.posted += 1
        known = self.earlier[self.posted - 1] if self.posted <= len(self.earlier) else None
        return reply_key(self.delivery_id, self.posted), known

    def posted_by_us(self, comment: Comment, key: str) -> bool:
        """Whether a comment on the thread is the one an earlier attempt posted under `key`:
        ours, with the key where `marked` puts it."""
        return written_by(comment, self.author) and comment.body.endswith(key)

    @property
    def check_key(self) -> str:
        """The `external_id` of the check runs this delivery creates."""
        return self.delivery_id

    def created_by_us(self, run: CheckRun, name: str) -> bool:
        """Whether a check run on the commit is the one an earlier attempt created as `name`:
        ours (the App whose bot `author` is), with this delivery's key."""
        app = self.author.removesuffix("[bot]")
        return run.app_slug == app and run.name == name and run.external_id == self.check_key


def marked(body: str, key: str) -> str:
    """`body` with its key at the end (an HTML comment: GitHub shows nothing of it)."""
    return f"{body}\n\n{key}"


def unmarked(body: str) -> str:
    """`body` as a reader sees it: without the key `marked` put at its end."""
    text, sep, last = body.rpartition("\n\n")
    return text if sep and last.startswith("<!-- shipmate:reply ") else body
