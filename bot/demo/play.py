"""Play the steps against a world, printing as they go; exit status 0 when every one did."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bot.demo.printer import Printer
from bot.demo.steps import STEPS, StepFailed, Story
from bot.demo.world import World


def play(root: Path, *, keep: bool, wait: Callable[[], None]) -> int:
    printer = Printer()
    world = World(root)
    try:
        printer.addresses(world.shipmate.url, world.gh.url, world.model.url, world.admin_token)
        story = Story()
        for number, step in enumerate(STEPS, 1):
            printer.step(number, len(STEPS), step.title)
            try:
                printer.done(step.run(world, story))
            except (StepFailed, TimeoutError) as exc:
                printer.failed(str(exc))
                return 1
        printer.summary(story, _costs(world))
        if keep:
            world.answer_forever("Nothing more to do here: this is the demo's model stand-in.")
            printer.keeping(world.webhook_url, world.secret, world.gh.url, world.settings.data_dir)
            wait()
        return 0
    finally:
        world.close()


def _costs(world: World) -> str:
    usage = world.model.total_usage()
    calls = len(world.model.requests)
    return (
        f"{calls} model calls, {usage['input_tokens']} input and "
        f"{usage['output_tokens']} output tokens (scripted model: no money spent)"
    )
