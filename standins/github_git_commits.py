"""The GitHub stand-in's commits: created through the Git database API (signed by GitHub's
web-flow key when an App names no committer of its own) and answered with their
`verification`, computed from the object itself."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from standins import git_objects as objects
from standins.github_common import Repo, Token, now_iso

if TYPE_CHECKING:
    from standins.github import GitHubStandIn


# Commits --------------------------------------------------------------------------------------


def create_commit(
    gh: GitHubStandIn, info: Repo, body: dict[str, Any], token: Token | None
) -> Response:
    message, tree, parents = body.get("message"), body.get("tree"), body.get("parents", [])
    if not isinstance(message, str):
        return gh._invalid("Commit", "message", "missing_field")
    if objects.object_type(info.path, tree) != "tree":
        return gh._error(422, "Tree SHA does not exist")
    if not isinstance(parents, list) or any(
        objects.object_type(info.path, p) != "commit" for p in parents
    ):
        return gh._error(422, "Parent SHA does not exist or is not a commit object")
    bot = gh._bot(token)
    made = objects.Person(
        bot, f"{_user_id(gh, bot)}+{bot}@users.noreply.github.com", int(time.time())
    )
    try:
        author = _person(body.get("author"), made)
        committer = _person(body.get("committer"), author if "author" in body else made)
    except (TypeError, ValueError):
        return gh._invalid("Commit", "author", "invalid")
    commit = objects.Commit(str(tree), list(parents), author, committer, message)
    if isinstance(body.get("signature"), str):
        commit.signature = body["signature"].rstrip("\n")
    elif token is not None and "committer" not in body:
        # GitHub signs what an App commits through the API, unless it names another committer.
        commit.signature = objects.web_flow_signature(commit.payload())
    sha = objects.write_commit(info.path, commit)
    return gh._json(commit_json(gh, info.full_name, sha, commit), 201)


def _user_id(gh: GitHubStandIn, login: str) -> int:
    return int(gh._user(login)["id"])


def _person(given: Any, default: objects.Person) -> objects.Person:
    if given is None:
        return default
    if not isinstance(given, dict) or not all(
        isinstance(given.get(k), str) for k in ("name", "email")
    ):
        raise ValueError("author and committer need a name and an email")
    when = datetime.fromisoformat(given["date"]) if given.get("date") else None
    seconds = int(when.timestamp()) if when else default.seconds
    return objects.Person(given["name"], given["email"], seconds)


def commit_json(gh: GitHubStandIn, repo: str, sha: str, commit: objects.Commit) -> dict[str, Any]:
    api = f"{gh.url}/repos/{repo}"
    reason = objects.verification_reason(commit)
    signed = commit.signature is not None
    return {
        "sha": sha,
        "node_id": base64.b64encode(f"0:Commit{sha}".encode()).decode(),
        "url": f"{api}/git/commits/{sha}",
        "html_url": f"{gh.url}/{repo}/commit/{sha}",
        "author": _person_json(commit.author),
        "committer": _person_json(commit.committer),
        "tree": {"sha": commit.tree, "url": f"{api}/git/trees/{commit.tree}"},
        "message": commit.message,
        "parents": [
            {"sha": p, "url": f"{api}/git/commits/{p}", "html_url": f"{gh.url}/{repo}/commit/{p}"}
            for p in commit.parents
        ],
        "verification": {
            "verified": reason == "valid",
            "reason": reason,
            "signature": f"{commit.signature}\n" if signed else None,
            "payload": commit.payload() if signed else None,
            "verified_at": now_iso() if reason == "valid" else None,
        },
    }


def _person_json(person: objects.Person) -> dict[str, str]:
    when = datetime.fromtimestamp(person.seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"name": person.name, "email": person.email, "date": when}


def account(gh: GitHubStandIn, person: objects.Person) -> dict[str, Any] | None:
    """The GitHub account of a commit's author: a `users.noreply` address names it."""
    local, _, host = person.email.partition("@")
    if host != "users.noreply.github.com":
        return None
    return gh._user(local.partition("+")[2] or local)
