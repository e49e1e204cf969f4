from __future__ import annotations

from typing import Any

import pytest

from bot.triggers.routing import Router


class _Ctx:
    def __init__(self, event: str, action: str | None) -> None:
        self.event = event
        self.action = action


@pytest.mark.anyio
async def test_event_and_action_registration_and_composition() -> None:
    calls: list[str] = []
    comments = Router()
    installs = Router()

    @comments.register("issue_comment", action="created")
    async def created(context: Any) -> None:
        calls.append("created")

    @comments.register("issue_comment")
    async def any_comment(context: Any) -> None:
        calls.append("any")

    @installs.register("installation", action="deleted")
    async def deleted(context: Any) -> None:
        calls.append("deleted")

    router = Router(comments, installs)
    assert router.handles("issue_comment", "edited")
    assert not router.handles("installation", "created")
    assert not router.handles("push", None)
    assert await router.dispatch(_Ctx("issue_comment", "created")) == 2  # type: ignore[arg-type]
    assert calls == ["any", "created"]
    calls.clear()
    assert await router.dispatch(_Ctx("issue_comment", "edited")) == 1  # type: ignore[arg-type]
    assert await router.dispatch(_Ctx("push", None)) == 0  # type: ignore[arg-type]
    assert calls == ["any"]


def test_handlers_package_composes_every_trigger() -> None:
    from handlers import router

    assert router.handles("ping", None)
    assert router.handles("installation", "created")
    assert router.handles("installation_repositories", "added")


def test_events_lists_every_registered_event_once() -> None:
    a, b = Router(), Router()

    @a.register("issues", action="opened")
    @a.register("issues", action="labeled")
    async def first(context: Any) -> None: ...

    @b.register("ping")
    async def second(context: Any) -> None: ...

    assert Router(a, b).events() == {"issues", "ping"}
    assert Router().events() == set()
