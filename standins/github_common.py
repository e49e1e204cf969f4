"""What the GitHub stand-in's modules share: its records of Apps, installations, tokens and
repositories, and small helpers for paths, JSON and git."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request

DOCS = "https://docs.github.com/rest"
LEVELS = {"none": 0, "read": 1, "write": 2, "admin": 3}
DEPLOYMENT_STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")


@dataclass
class App:
    id: int
    slug: str
    private_key_pem: str
    public_key: Any
    webhook_secret: str


@dataclass
class Installation:
    id: int
    app: App
    account: str
    repositories: list[str]
    permissions: dict[str, str]


@dataclass
class Token:
    value: str
    installation: Installation
    repositories: list[str]
    permissions: dict[str, str]
    expires_at: float


@dataclass
class Repo:
    full_name: str
    id: int
    path: Path
    default_branch: str
    private: bool = True


@dataclass
class Call:
    """One request as a route's handler sees it: the path parameters by GitHub's names (those
    the description types as integers already checked to be digits), the JSON body (checked
    against GitHub's request schema), and the credentials it carried."""

    request: Request
    params: dict[str, str]
    body: dict[str, Any]
    token: Token | None
    app: App | None = None

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def query(self) -> QueryParams:
        return self.request.query_params

    @property
    def repo(self) -> str:
        return f"{self.params['owner']}/{self.params['repo']}"

    def number(self, name: str) -> int:
        return int(self.params[name])


def now_iso(offset: float = 0) -> str:
    return datetime.fromtimestamp(time.time() + offset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def git(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            **(env or {}),
        },
    )
    return result.stdout


class NotFound(Exception):
    pass


def path_id(segment: str) -> int:
    """A numeric path segment; anything else is a route GitHub does not have (404)."""
    if not segment.isdigit():
        raise NotFound
    return int(segment)


def owned(records: Mapping[int, dict[str, Any]], segment: str, repo: str) -> dict[str, Any]:
    """The record a path segment names, if it belongs to `repo`; else a 404."""
    record = records.get(path_id(segment))
    if record is None or record["_repo"] != repo:
        raise NotFound
    return record


def query_int(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() else default


def public(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without the stand-in's own bookkeeping keys (those starting with "_" but
    GitHub's `_links`)."""
    return {k: v for k, v in data.items() if not k.startswith("_") or k == "_links"}
