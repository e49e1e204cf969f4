"""Installations: remember which accounts installed the App and which repositories it may see."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.context import Context
from bot.routing import Router

router = Router()


def _names(repositories: Any) -> list[str]:
    return [
        r["full_name"] for r in repositories or () if isinstance(r, dict) and r.get("full_name")
    ]


def _installation(context: Context) -> tuple[int, str]:
    installation = context.payload["installation"]
    account = (installation.get("account") or {}).get("login") or ""
    return int(installation["id"]), str(account)


@router.register("installation", action="created")
@router.register("installation", action="unsuspend")
@router.register("installation", action="new_permissions_accepted")
async def installed(context: Context) -> None:
    installation_id, account = _installation(context)
    store = context.store
    await asyncio.to_thread(store.upsert_installation, installation_id, account, suspended=False)
    added = _names(context.payload.get("repositories"))
    await asyncio.to_thread(store.add_repositories, installation_id, added)
    context.log.info("installation.saved", account=account, repositories=len(added))


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
    installation_id, account = _installation(context)
    store = context.store
    if await asyncio.to_thread(store.get_installation, installation_id) is None:
        await asyncio.to_thread(store.upsert_installation, installation_id, account)
    added = _names(context.payload.get("repositories_added"))
    removed = _names(context.payload.get("repositories_removed"))
    await asyncio.to_thread(store.add_repositories, installation_id, added)
    await asyncio.to_thread(store.remove_repositories, installation_id, removed)
    context.log.info("installation.repositories", added=added, removed=removed)
