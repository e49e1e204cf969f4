"""Webhook payloads for the GitHub stand-in's emitter: a recorded payload, reshaped by a few
named fields (repository, sender, pull request number, head commit) so a test need not build
nested dicts by hand. Pure functions."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HEAD_SHA_OWNERS = ("check_run", "check_suite", "workflow_run", "workflow_job")


def recorded(folder: Path, event: str, action: str | None, fixture: str | None) -> dict[str, Any]:
    """The recorded payload of `event` (the first whose file name starts with `action.`, or
    `fixture` by name)."""
    where = folder / event
    if not where.is_dir():
        known = ", ".join(sorted(p.name for p in folder.iterdir() if p.is_dir()))
        raise ValueError(f"no recorded payloads for event {event!r}; recorded events: {known}")
    names = sorted(p.name for p in where.iterdir() if p.suffix == ".json")
    if fixture is not None:
        if fixture not in names:
            raise ValueError(
                f"no recorded {event} payload {fixture!r}; recorded: {', '.join(names)}"
            )
        name = fixture
    else:
        matching = [n for n in names if action is None or n.startswith(f"{action}.")]
        if not matching:
            actions = sorted({n.split(".", 1)[0] for n in names})
            raise ValueError(
                f"no recorded {event} payload for action {action!r}; "
                f"recorded actions: {', '.join(actions)}"
            )
        name = matching[0]
    payload: dict[str, Any] = json.loads((where / name).read_text())
    return payload


def reshape(
    payload: dict[str, Any],
    *,
    repo: str | None = None,
    repo_id: int | None = None,
    sender: str | None = None,
    pull: int | None = None,
    head_sha: str | None = None,
    installation_id: int | None = None,
) -> None:
    """Set the named fields everywhere the payload carries them, consistently."""
    if repo is not None:
        _set_repository(payload, repo, repo_id)
    if sender is not None:
        payload["sender"] = {
            **(payload.get("sender") or {}),
            "login": sender,
            "type": "Bot" if sender.endswith("[bot]") else "User",
        }
    if pull is not None:
        _set_pull_number(payload, pull)
    if head_sha is not None:
        _set_head_sha(payload, head_sha)
    if installation_id is not None:
        payload["installation"] = {**(payload.get("installation") or {}), "id": installation_id}


def merge(target: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Deep-merge `overrides` into `target` (dicts merge; everything else replaces)."""
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _set_repository(payload: dict[str, Any], full_name: str, repo_id: int | None) -> None:
    owner, name = full_name.split("/", 1)
    repository = payload.setdefault("repository", {})
    repository.update(full_name=full_name, name=name)
    repository["owner"] = {**(repository.get("owner") or {}), "login": owner}
    if repo_id is not None:
        repository["id"] = repo_id
    repository["html_url"] = f"https://github.com/{full_name}"
    repository["url"] = f"https://api.github.com/repos/{full_name}"


def _set_pull_number(payload: dict[str, Any], number: int) -> None:
    if "number" in payload:
        payload["number"] = number
    for key in ("pull_request", "issue"):
        if isinstance(payload.get(key), dict):
            payload[key]["number"] = number
    for owner in HEAD_SHA_OWNERS:
        pulls = (payload.get(owner) or {}).get("pull_requests")
        for listed in pulls if isinstance(pulls, list) else []:
            listed["number"] = number


def _set_head_sha(payload: dict[str, Any], sha: str) -> None:
    if isinstance(payload.get("pull_request"), dict):
        payload["pull_request"].setdefault("head", {})["sha"] = sha
    for owner in HEAD_SHA_OWNERS:
        if isinstance(payload.get(owner), dict):
            payload[owner]["head_sha"] = sha
    check_run = payload.get("check_run")
    if isinstance(check_run, dict) and isinstance(check_run.get("check_suite"), dict):
        check_run["check_suite"]["head_sha"] = sha
    if isinstance(payload.get("deployment"), dict):
        payload["deployment"]["sha"] = sha
    if "sha" in payload:  # status
        payload["sha"] = sha
    if "after" in payload:  # push
        payload["after"] = sha
