"""Installations: remember which accounts installed the App and which repositories it may see."""

from __future__ import annotations

import asyncio

from bot.config import RepoConfigError, parse_repo_config
from bot.triggers.context import Context
from bot.triggers.events import Installation, InstallationRepositories, Repository
from bot.triggers.routing import Router

router = Router()
READY = "Comment `/shipmate help` on an issue to see what Shipmate can do."


def _names(repositories: list[Repository] | None) -> list[str]:
    return [r.full_name for r in repositories or () if r.full_name]


def _installation(context: Context) -> tuple[int, str]:
    installation = Installation.model_validate(context.payload).installation
    return installation.id, installation.account.login if installation.account else ""


@router.register("installation", action="created")
@router.register("installation", action="unsuspend")
@router.register("installation", action="new_permissions_accepted")
async def installed(context: Context) -> None:
    event = Installation.model_validate(context.payload)
    installation_id, account = _installation(context)
    store = context.store
    await asyncio.to_thread(store.upsert_installation, installation_id, account, suspended=False)
    added = _names(event.repositories)
    await asyncio.to_thread(store.add_repositories, installation_id, added)
    context.log.info("installation.saved", account=account, repositories=len(added))
    if context.action == "created":
        await welcome(context, added)


@router.register("installation", action="suspend")
async def suspended(context: Context) -> None:
    installation_id, account = _installation(context)
    await asyncio.to_thread(
        context.store.upsert_installation, installation_id, account, suspended=True
    )
    context.log.info("installation.suspended", account=account)


@router.register("installation", action="deleted")
async def uninstalled(context: Context) -> None:
    installation_id, account = _installation(context)
    await asyncio.to_thread(context.store.delete_installation, installation_id)
    context.log.info("installation.deleted", account=account)


@router.register("installation_repositories")
async def repositories_changed(context: Context) -> None:
    event = InstallationRepositories.model_validate(context.payload)
    installation_id, account = _installation(context)
    store = context.store
    if await asyncio.to_thread(store.get_installation, installation_id) is None:
        await asyncio.to_thread(store.upsert_installation, installation_id, account)
    added = _names(event.repositories_added)
    removed = _names(event.repositories_removed)
    await asyncio.to_thread(store.add_repositories, installation_id, added)
    await asyncio.to_thread(store.remove_repositories, installation_id, removed)
    context.log.info("installation.repositories", added=added, removed=removed)
    await welcome(context, added)


async def welcome(context: Context, repositories: list[str]) -> None:
    """A `Shipmate config` check on each new repository's default branch: ready, or which line
    of `.github/shipmate.yml` is wrong."""
    if context.client_factory is None:
        return
    for name in repositories:
        repo = await context.repo_named(name)
        branch = await repo.default_branch()
        sha = await repo.branch_sha(branch)
        if sha is None:
            continue
        try:
            parse_repo_config(await repo.file_text(".github/shipmate.yml", branch))
        except RepoConfigError as exc:
            verdict = ("failure", ".github/shipmate.yml is invalid", str(exc))
            await asyncio.to_thread(context.store.views.record_config_check, name, str(exc))
        else:
            verdict = ("success", "Shipmate is ready", READY)
            await asyncio.to_thread(context.store.views.record_config_check, name, None)
        conclusion, title, summary = verdict
        await repo.create_check_run(
            name="Shipmate config",
            head_sha=sha,
            status="completed",
            conclusion=conclusion,
            title=title,
            summary=summary,
        )
