"""Feedback on Shipmate's own pull requests (a failing check, a review, a failed deploy) becomes a
repair run on the same branch, within capped attempts per failure and per PR."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from bot.ci import excerpt, fingerprint
from bot.context import Context
from bot.github import RepoClient
from bot.tasks import enqueue_run


async def shipmate_pull(context: Context, repo: RepoClient, number: int) -> dict[str, Any] | None:
    """The PR if Shipmate opened it — by GitHub's own record (author is our bot, head branch is
    shipmate/…), not our database, so a new database loses no PR."""
    response = await repo.github.rest.pulls.async_get(repo.owner, repo.repo, number)
    pull: dict[str, Any] = response.raw_response.json()
    bot = f"{context.settings.app_slug or 'shipmate'}[bot]"
    ours = (pull.get("user") or {}).get("login") == bot
    if (
        ours
        and str((pull.get("head") or {}).get("ref", "")).startswith("shipmate/")
        and pull.get("state") == "open"
    ):
        return pull
    return None


async def repair(
    context: Context, repo: RepoClient, pull: dict[str, Any], *, check: str, log: str, label: str
) -> bool:
    """Start a repair run for a failure on `pull`'s head, unless its attempts are used up."""
    assert context.repository is not None
    number = int(pull["number"])
    cut = excerpt(log)
    mark = fingerprint(check, cut.first_error)
    config = await context.config()
    mine, total = await asyncio.to_thread(
        context.store.bump_repair_attempt, context.repository, number, mark
    )
    if mine > config.max_attempts_per_failure or total > config.max_attempts_per_pr:
        if mine == config.max_attempts_per_failure + 1 or total == config.max_attempts_per_pr + 1:
            await repo.comment(
                number,
                f"I've tried to fix `{check}` as many times as this repository allows "
                f"({config.max_attempts_per_failure} per failure, {config.max_attempts_per_pr} per "
                "pull request). A human needs to take it from here.",
            )
        context.log.info("repair.capped", check=check, attempts=mine, total=total)
        return False
    head = pull["head"]
    return await enqueue_run(
        context,
        repo,
        number,
        "repair",
        {
            "pr": {"number": number, "head_ref": head["ref"], "head_sha": head["sha"]},
            "task": f"The check `{check}` fails on this pull request. Make the smallest change "
            "that makes it pass, without touching anything else.",
            "feedback": cut.text,
            "feedback_label": label,
        },
    )


def same_host(url: str | None, api_url: str) -> bool:
    if not url:
        return False
    return urlsplit(url).hostname == urlsplit(api_url).hostname
