"""`/shipmate <verb>` (or `@<app-slug> <verb>`) at the start of a line of a new comment. The
first command counts, except that a `stop` anywhere wins."""

from __future__ import annotations

from bot.runs.request import Task
from bot.runs.tasks import handle, may_trigger
from bot.triggers.context import Context
from bot.triggers.events import IssueComment
from bot.triggers.routing import Router
from bot.triggers.verbs import parse_commands

router = Router()


@router.register("issue_comment", action="created")
async def comment_created(context: Context) -> None:
    if context.sender_is_bot:
        return
    event = IssueComment.model_validate(context.payload)
    commands = parse_commands(event.comment.body, context.settings.app_slug)
    if not commands:
        return
    repo = await context.repo()
    await repo.react_eyes(event.comment.id)
    number = event.issue.number
    if not await may_trigger(context, repo, number):
        return
    # A stop anywhere in the comment wins over whatever else it asks.
    command = next((c for c in commands if c.verb == "stop"), commands[0])
    if command.known and command.misplaced:
        flags = ", ".join(f"`{flag}`" for flag in command.misplaced)
        await repo.comment(
            number,
            f"`/shipmate {command.verb}` takes no {flags}: `--large` goes with "
            "`/shipmate apply`, to publish a change held back for its size.",
        )
        return
    task = Task()
    if event.issue.pull_request is not None and command.verb in ("fix", "plan", "apply"):
        pull = await repo.pull(number)
        if pull is not None:
            # Work from the PR's head, in a shipmate/ branch of this repository (never the
            # fork's); a fork's code runs without any secrets.
            task = Task(
                base_sha=pull.head_sha,
                fork=pull.head_repo not in (None, context.repository),
                instruction=f"Make the smallest change on top of pull request #{number}"
                + (" that does what is asked" if command.args else " that makes its tests pass"),
            )
    await handle(context, repo, number, command.verb, command.args, task, large=command.large)
