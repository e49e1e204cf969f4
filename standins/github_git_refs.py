"""The GitHub stand-in's refs through the Git database API: created only where none is, moved
only by a fast-forward unless `force` says otherwise, never to a change of .github/workflows/
without `workflows: write`; each move is recorded as a push."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from standins import git_objects as objects
from standins.github_common import Repo, Token

if TYPE_CHECKING:
    from standins.github import GitHubStandIn


@dataclass
class GitDatabase:
    """Test hooks: each callable in `before_ref_update` runs once, just before the next ref
    update or creation is judged — as if someone pushed at that very moment."""

    before_ref_update: list[Callable[[], object]] = field(default_factory=list)


def create_ref(
    gh: GitHubStandIn, info: Repo, body: dict[str, Any], token: Token | None
) -> Response:
    ref, sha = body.get("ref"), body.get("sha")
    if not isinstance(ref, str) or not ref.startswith("refs/") or ref.count("/") < 2:
        return gh._error(422, "Reference name must start with 'refs/' and have two slashes")
    _run_hooks(gh)
    if not _valid_ref_name(info, ref):
        return gh._error(422, f"{ref} is not a valid ref name.")
    if objects.object_type(info.path, sha) is None:
        return gh._error(422, "Object does not exist")
    if _ref_sha(info, ref) is not None:
        return gh._error(422, "Reference already exists")
    return _move(gh, info, ref, str(sha), None, token, 201)


def update_ref(
    gh: GitHubStandIn, info: Repo, ref: str, body: dict[str, Any], token: Token | None
) -> Response:
    sha, force = body.get("sha"), body.get("force", False)
    if not isinstance(sha, str) or not isinstance(force, bool):
        return gh._invalid("Reference", "sha", "missing_field")
    _run_hooks(gh)
    old = _ref_sha(info, ref)
    if old is None:
        return gh._error(422, "Reference does not exist")
    if objects.object_type(info.path, sha) is None:
        return gh._error(422, "Object does not exist")
    if not force and not _is_ancestor(info, old, sha):
        return gh._error(422, "Update is not a fast forward")
    return _move(gh, info, ref, sha, old, token, 200)


def _move(
    gh: GitHubStandIn,
    info: Repo,
    ref: str,
    sha: str,
    old: str | None,
    token: Token | None,
    status: int,
) -> Response:
    """The ref moves from `old` (None: it must not exist) to `sha`, or not at all."""
    refused = _workflow_refusal(info, old, sha, token)
    if refused:
        return gh._error(422, refused)
    before = gh._heads(info)
    try:
        objects.run_git(info.path, "update-ref", ref, sha, old or objects.ZERO)
    except objects.GitFailed:
        return gh._error(422, "Reference cannot be updated")
    gh._after_push(info, before, token)
    api = f"{gh.url}/repos/{info.full_name}/git"
    kind = objects.object_type(info.path, sha)
    return gh._json(
        {
            "ref": ref,
            "node_id": base64.b64encode(f"0:Ref{ref}".encode()).decode(),
            "url": f"{api}/{ref}",
            "object": {"type": kind, "sha": sha, "url": f"{api}/{kind}s/{sha}"},
        },
        status,
    )


def _run_hooks(gh: GitHubStandIn) -> None:
    hooks: GitDatabase = gh.git_database
    while hooks.before_ref_update:
        hooks.before_ref_update.pop(0)()


def _ref_sha(info: Repo, ref: str) -> str | None:
    try:
        return objects.run_git(info.path, "rev-parse", "--verify", "--quiet", ref).decode().strip()
    except objects.GitFailed:
        return None


def _valid_ref_name(info: Repo, ref: str) -> bool:
    try:
        objects.run_git(info.path, "check-ref-format", ref)
    except objects.GitFailed:
        return False
    return True


def _is_ancestor(info: Repo, old: str, new: str) -> bool:
    try:
        objects.run_git(info.path, "merge-base", "--is-ancestor", old, new)
    except objects.GitFailed:
        return False
    return True


def _workflow_refusal(info: Repo, old: str | None, new: str, token: Token | None) -> str | None:
    """GitHub's refusal of an App's change under .github/workflows/ without `workflows: write`."""
    if token is not None and token.permissions.get("workflows") == "write":
        return None
    span = [f"{old}..{new}"] if old else [new, "--not", "--all"]
    names = objects.run_git(info.path, "log", "--format=", "--name-only", *span).decode()
    touched = [n for n in names.splitlines() if n.startswith(".github/workflows/")]
    if not touched:
        return None
    return (
        f"refusing to allow a GitHub App to create or update workflow `{touched[0]}` "
        "without `workflows` permission"
    )
