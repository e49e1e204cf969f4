"""The `Shipmate` check run's buttons: Stop while a task runs, Retry after a failure. A press
is `check_run.requested_action`, obeyed with the same permission check as a comment."""

from __future__ import annotations

from pydantic import Field

from bot.runs.tasks import handle, may_trigger
from bot.triggers.context import Context
from bot.triggers.events import CheckRunItem, Event, Payload
from bot.triggers.routing import Router

router = Router()
VERBS = ("stop", "retry")


class RequestedAction(Payload):
    identifier: str


class CheckRunAction(Event):
    check_run: CheckRunItem
    requested_action: RequestedAction = Field(
        default_factory=lambda: RequestedAction(identifier="")
    )


@router.register("check_run", action="requested_action")
async def button_pressed(context: Context) -> None:
    event = CheckRunAction.model_validate(context.payload)
    verb = event.requested_action.identifier
    run = event.check_run
    ours = context.settings.app_slug or "shipmate"
    if verb not in VERBS or run.name != "Shipmate" or (run.app and run.app.slug != ours):
        return
    repo = await context.repo()
    numbers = [pull.number for pull in run.pull_requests]
    if not numbers:
        numbers = [int(p["number"]) for p in await repo.pulls_for_commit(run.head_sha)]
    if not numbers:
        return
    number = numbers[0]
    if not await may_trigger(context, repo, number):
        return
    await handle(context, repo, number, verb)
