"""`/shipmate <verb>` (or `@<app-slug> <verb>`) at the start of a line of a new comment. The
first command counts, except that a `stop` anywhere wins."""

from __future__ import annotations

from bot.runs.tasks import handle, may_trigger
from bot.triggers.context import Context
from bot.triggers.routing import Router
from bot.triggers.verbs import parse_commands

router = Router()


@router.register("issue_comment", action="created")
async def comment_created(context: Context) -> None:
    if context.sender_is_bot:
        return
    comment = context.payload.get("comment") or {}
    commands = parse_commands(comment.get("body"), context.settings.app_slug)
    if not commands:
        return
    repo = await context.repo()
    await repo.react_eyes(int(comment["id"]))
    number = int((context.payload.get("issue") or {})["number"])
    if not await may_trigger(context, repo, number):
        return
    # A stop anywhere in the comment wins over whatever else it asks.
    command = next((c for c in commands if c.verb == "stop"), commands[0])
    extra: dict[str, object] = {}
    on_pull = (context.payload.get("issue") or {}).get("pull_request")
    if on_pull and command.verb in ("fix", "plan", "apply"):
        pull = await repo.pull(number)
        if pull is not None:
            # Work from the PR's head, in a shipmate/ branch of this repository (never the
            # fork's); a fork's code runs without any secrets.
            extra = {
                "base_sha": pull.head_sha,
                "fork": pull.head_repo not in (None, context.repository),
                "task": f"Make the smallest change on top of pull request #{number}"
                + (" that does what is asked" if command.args else " that makes its tests pass"),
            }
    await handle(context, repo, number, command.verb, command.args, extra)
