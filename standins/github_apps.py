"""The GitHub stand-in's App routes: the App itself, installation tokens scoped to repositories
and permissions, and the installation on a repository, each behind the App's JWT."""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from standins import github_shapes as shapes
from standins.github_common import LEVELS, Call, Installation, NotFound, Token, now_iso

if TYPE_CHECKING:
    from standins.github import GitHubStandIn


def get_app(gh: GitHubStandIn, call: Call) -> Response:
    assert call.app is not None
    return gh._json(shapes.integration(gh.url, call.app.id, call.app.slug))


def repo_installation(gh: GitHubStandIn, call: Call) -> Response:
    app = call.app
    mine = (i for i in gh.installations.values() if app is not None and i.app.id == app.id)
    found = next((i for i in mine if call.repo in i.repositories), None)
    if found is None:
        raise NotFound
    return gh._json(_installation_json(gh, found))


def _installation_json(gh: GitHubStandIn, installation: Installation) -> dict[str, Any]:
    app = shapes.integration(gh.url, installation.app.id, installation.app.slug)
    return shapes.installation(
        gh.url, installation.id, app, installation.account, installation.permissions
    )


def create_token(gh: GitHubStandIn, call: Call) -> Response:
    installation = gh.installations.get(int(call.params["installation_id"]))
    if installation is None or call.app is None or installation.app.id != call.app.id:
        raise NotFound
    repos = _scoped_repositories(gh, installation, call.body)
    if repos is None:
        return gh._error(
            422,
            "There is at least one repository that does not exist or is not accessible to the parent installation.",
        )
    permissions = _scoped_permissions(installation, call.body)
    if isinstance(permissions, str):
        return gh._error(
            422, f"The permissions requested are not granted to this installation: {permissions}"
        )
    value = "ghs_" + secrets.token_urlsafe(27).replace("-", "a").replace("_", "b")[:36]
    expires = time.time() + gh.token_lifetime
    gh.tokens[value] = Token(value, installation, repos, permissions, expires)
    listed = [gh._repo_json(gh.state.repos[r]) for r in repos if r in gh.state.repos]
    answer: dict[str, Any] = {"token": value, "expires_at": now_iso(gh.token_lifetime)}
    answer |= {"permissions": permissions, "repository_selection": "selected"}
    return gh._json({**answer, "repositories": listed}, 201)


def _scoped_repositories(
    gh: GitHubStandIn, installation: Installation, body: dict[str, Any]
) -> list[str] | None:
    """The repositories a token asks for by name or id (all the installation's when it names
    none), or None when it names one the installation does not have."""
    held = installation.repositories
    by_id = {gh.state.repos[r].id: r for r in held if r in gh.state.repos}
    wanted = [f"{installation.account}/{name}" for name in body.get("repositories") or []]
    ids = list(body.get("repository_ids") or [])
    if any(r not in held for r in wanted) or any(i not in by_id for i in ids):
        return None
    wanted += [by_id[i] for i in ids if by_id[i] not in wanted]
    return wanted or list(held)


def _scoped_permissions(installation: Installation, body: dict[str, Any]) -> dict[str, str] | str:
    """The permissions a token asks for, or the first "name:level" the installation lacks."""
    permissions = dict(installation.permissions)
    if body.get("permissions"):
        for name, level in body["permissions"].items():
            granted = LEVELS.get(installation.permissions.get(name, "none"), 0)
            if granted < LEVELS.get(level, 9):
                return f"{name}:{level}"
        permissions = dict(body["permissions"])
    permissions.setdefault("metadata", "read")
    return permissions
