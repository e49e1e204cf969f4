"""Shipmate's own pull requests, recognised from GitHub itself — author is our bot, head branch is
`shipmate/…` — not from our database, so a new or restored database loses no PR."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.github.client import RepoClient
from bot.triggers.context import Context


def is_ours(context: Context, pull: Mapping[str, Any]) -> bool:
    bot = f"{context.settings.app_slug or 'shipmate'}[bot]"
    return (pull.get("user") or {}).get("login") == bot and str(
        (pull.get("head") or {}).get("ref", "")
    ).startswith("shipmate/")


async def open_pull_for_issue(
    context: Context, repo: RepoClient, number: int
) -> dict[str, Any] | None:
    """The open pull request Shipmate opened for issue `number` (from a `shipmate/<number>-…`
    branch), the newest if there are several; None when there is none."""
    for pull in await repo.open_pulls_headed(f"shipmate/{number}-"):
        if is_ours(context, pull):
            return pull
    return None
