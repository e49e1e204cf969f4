"""GitHub's REST answer shapes for the stand-in: pure builders of the JSON GitHub sends for
people, repositories, Apps, issues, labels, comments and pull requests, with every field
GitHub's description requires (tests/test_standin_openapi.py holds them to it), so answers
parse as githubkit's `parsed_data` as well as raw JSON."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

REPO_URLS = (
    "archive",
    "assignees",
    "blobs",
    "branches",
    "collaborators",
    "comments",
    "commits",
    "compare",
    "contents",
    "contributors",
    "deployments",
    "downloads",
    "events",
    "forks",
    "git_commits",
    "git_refs",
    "git_tags",
    "issue_comment",
    "issue_events",
    "issues",
    "keys",
    "labels",
    "languages",
    "merges",
    "milestones",
    "notifications",
    "pulls",
    "releases",
    "stargazers",
    "statuses",
    "subscribers",
    "subscription",
    "tags",
    "teams",
    "trees",
    "hooks",
)
USER_URLS = (
    "followers",
    "following",
    "gists",
    "starred",
    "subscriptions",
    "organizations",
    "repos",
    "events",
    "received_events",
)
REPO_FLAGS = ("has_issues", "has_projects", "has_wiki", "has_downloads")
REPO_COUNTS = (
    *("forks", "forks_count", "open_issues", "open_issues_count", "stargazers_count"),
    *("watchers", "watchers_count", "network_count", "subscribers_count", "size"),
)
EPOCH = "2024-01-01T00:00:00Z"


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0:{kind}{number}".encode()).decode()


def stable_id(name: str) -> int:
    """A stable id per login, app slug or workflow name (crc32, the same in every process)."""
    return zlib.crc32(name.encode()) % 10**7 + 1


def user(base: str, login: str) -> dict[str, Any]:
    number = stable_id(login)
    api = f"{base}/users/{login}"
    shape: dict[str, Any] = {
        "login": login,
        "id": number,
        "node_id": node_id("User", number),
        "avatar_url": f"{base}/avatars/{login}",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{base}/{login}",
        "type": "Bot" if login.endswith("[bot]") else "User",
        "site_admin": False,
    }
    shape.update({f"{name}_url": f"{api}/{name}" for name in USER_URLS})
    return shape


def repository(
    base: str, full_name: str, repo_id: int, default_branch: str, private: bool
) -> dict[str, Any]:
    """A repository as GitHub's full form has it (a superset of its shorter forms)."""
    owner, name = full_name.split("/", 1)
    api = f"{base}/repos/{full_name}"
    shape: dict[str, Any] = {
        "id": repo_id,
        "node_id": node_id("Repository", repo_id),
        "name": name,
        "full_name": full_name,
        "private": private,
        "owner": user(base, owner),
        "html_url": f"{base}/{full_name}",
        "description": None,
        "fork": False,
        "url": api,
        "clone_url": f"{base}/{full_name}.git",
        "git_url": f"{base}/{full_name}.git",
        "ssh_url": f"git@localhost:{full_name}.git",
        "svn_url": f"{base}/{full_name}",
        "mirror_url": None,
        "homepage": None,
        "language": None,
        "license": None,
        "default_branch": default_branch,
        "created_at": EPOCH,
        "updated_at": EPOCH,
        "pushed_at": EPOCH,
        "has_pages": False,
        "has_discussions": False,
        "disabled": False,
        "archived": False,
        "visibility": "private" if private else "public",
    }
    shape.update(dict.fromkeys(REPO_FLAGS, True))
    shape.update(dict.fromkeys(REPO_COUNTS, 0))
    shape.update({f"{kind}_url": f"{api}/{kind}" for kind in REPO_URLS})
    return shape


def integration(base: str, app_id: int, slug: str) -> dict[str, Any]:
    return {
        "id": app_id,
        "slug": slug,
        "client_id": f"Iv1.{app_id:016x}",
        "node_id": node_id("Integration", app_id),
        "owner": user(base, "github" if slug == "github-actions" else "octo"),
        "name": "GitHub Actions" if slug == "github-actions" else slug,
        "description": "",
        "external_url": f"{base}/apps/{slug}",
        "html_url": f"{base}/apps/{slug}",
        "created_at": EPOCH,
        "updated_at": EPOCH,
        "permissions": {},
        "events": [],
        "installations_count": 1,
    }


def installation(
    base: str,
    installation_id: int,
    app: dict[str, Any],
    account: str,
    permissions: Mapping[str, str],
) -> dict[str, Any]:
    owner = user(base, account)
    return {
        "id": installation_id,
        "account": owner,
        "app_id": app["id"],
        "app_slug": app["slug"],
        "client_id": app["client_id"],
        "target_id": owner["id"],
        "target_type": "Organization",
        "repository_selection": "selected",
        "single_file_name": None,
        "access_tokens_url": f"{base}/app/installations/{installation_id}/access_tokens",
        "repositories_url": f"{base}/installation/repositories",
        "html_url": f"{base}/organizations/{account}/settings/installations/{installation_id}",
        "events": [],
        "permissions": dict(permissions),
        "created_at": EPOCH,
        "updated_at": EPOCH,
        "suspended_by": None,
        "suspended_at": None,
    }


def label(base: str, full_name: str, name: str) -> dict[str, Any]:
    number = stable_id(f"{full_name}:{name}")
    return {
        "id": number,
        "node_id": node_id("Label", number),
        "url": f"{base}/repos/{full_name}/labels/{quote(name, safe='')}",
        "name": name,
        "description": None,
        "color": f"{number % 0xFFFFFF:06x}",
        "default": False,
    }


def issue(base: str, full_name: str, record: Mapping[str, Any], comments: int) -> dict[str, Any]:
    """An issue (or the issue side of a pull request) from the stand-in's record of it."""
    api = f"{base}/repos/{full_name}/issues/{record['number']}"
    shape = {
        "url": api,
        "repository_url": f"{base}/repos/{full_name}",
        "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments",
        "events_url": f"{api}/events",
        "html_url": record["html_url"],
        "id": record["id"],
        "node_id": node_id("Issue", record["id"]),
        "number": record["number"],
        "title": record["title"],
        "body": record.get("body"),
        "user": record["user"],
        "labels": list(record.get("labels", [])),
        "state": record.get("state", "open"),
        "state_reason": None,
        "locked": False,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": comments,
        "created_at": record.get("created_at", EPOCH),
        "updated_at": record.get("updated_at", EPOCH),
        "closed_at": record.get("closed_at"),
        "author_association": "NONE",
    }
    if "head" in record:  # a pull request
        pull_keys = ("url", "html_url", "diff_url", "patch_url", "merged_at")
        shape["pull_request"] = {key: record.get(key) for key in pull_keys}
    return shape


def issue_comment(base: str, record: Mapping[str, Any]) -> dict[str, Any]:
    repo, number = record["repo"], record["issue"]
    return {
        "id": record["id"],
        "node_id": node_id("IssueComment", record["id"]),
        "url": f"{base}/repos/{repo}/issues/comments/{record['id']}",
        "html_url": record["html_url"],
        "issue_url": f"{base}/repos/{repo}/issues/{number}",
        "body": record["body"],
        "user": record["user"],
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
        "author_association": "NONE",
    }


def simple_commit(sha: str, tree: str, message: str, when: str) -> dict[str, Any]:
    person = {"name": "octocat", "email": "o@example.com"}
    return {
        "id": sha,
        "tree_id": tree,
        "message": message,
        "timestamp": when,
        "author": person,
        "committer": person,
    }
