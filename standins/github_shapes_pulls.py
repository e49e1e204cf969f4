"""GitHub's REST answer shapes for pull requests, their reviews, review comments and changed
files: pure builders of the JSON GitHub sends, with every field its description requires."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from standins.github_shapes import node_id


def pull_links(base: str, full_name: str, number: int, head_sha: str) -> dict[str, str]:
    api = f"{base}/repos/{full_name}"
    return {
        "self": f"{api}/pulls/{number}",
        "html": f"{base}/{full_name}/pull/{number}",
        "issue": f"{api}/issues/{number}",
        "comments": f"{api}/issues/{number}/comments",
        "review_comments": f"{api}/pulls/{number}/comments",
        "review_comment": f"{api}/pulls/comments{{/number}}",
        "commits": f"{api}/pulls/{number}/commits",
        "statuses": f"{api}/statuses/{head_sha}",
    }


COUNTS = ("comments", "review_comments", "commits", "additions", "deletions", "changed_files")


def pull_request(
    base: str,
    full_name: str,
    *,
    pull_id: int,
    number: int,
    title: str,
    body: str | None,
    author: dict[str, Any],
    head: dict[str, Any],
    base_ref: dict[str, Any],
    draft: bool,
    created_at: str,
) -> dict[str, Any]:
    links = pull_links(base, full_name, number, head["sha"])
    shape: dict[str, Any] = {
        "url": links["self"],
        "id": pull_id,
        "node_id": node_id("PullRequest", pull_id),
        "html_url": links["html"],
        "diff_url": f"{links['html']}.diff",
        "patch_url": f"{links['html']}.patch",
        "issue_url": links["issue"],
        "number": number,
        "state": "open",
        "locked": False,
        "title": title,
        "user": author,
        "body": body,
        "labels": [],
        "created_at": created_at,
        "updated_at": created_at,
        "head": head,
        "base": base_ref,
        "_links": {key: {"href": value} for key, value in links.items()},
        "author_association": "NONE",
        "draft": draft,
        "merged": False,
        "mergeable": True,
        "mergeable_state": "clean",
        "maintainer_can_modify": False,
    }
    shape.update({f"{key}_url": links[key] for key in ("commits", "review_comments", "comments")})
    shape.update(review_comment_url=links["review_comment"], statuses_url=links["statuses"])
    nothing = ("milestone", "active_lock_reason", "closed_at", "merged_at", "merge_commit_sha")
    shape.update(dict.fromkeys((*nothing, "assignee", "auto_merge", "merged_by")))
    shape.update(assignees=[], requested_reviewers=[], requested_teams=[])
    shape.update(dict.fromkeys(COUNTS, 0), commits=1)
    return shape


def pull_ref(
    ref: str, sha: str | None, repo: dict[str, Any], owner: dict[str, Any]
) -> dict[str, Any]:
    return {
        "label": f"{owner['login']}:{ref}",
        "ref": ref,
        "sha": sha or "",
        "repo": repo,
        "user": owner,
    }


def pull_minimal(
    base: str, full_name: str, repo_id: int, pull: Mapping[str, Any]
) -> dict[str, Any]:
    """The short form a workflow run or check suite lists its pull requests in."""
    name = full_name.split("/", 1)[1]
    repo = {"id": repo_id, "url": f"{base}/repos/{full_name}", "name": name}
    return {
        "id": pull["id"],
        "number": pull["number"],
        "url": f"{base}/repos/{full_name}/pulls/{pull['number']}",
        "head": {"ref": pull["head"]["ref"], "sha": pull["head"]["sha"], "repo": repo},
        "base": {"ref": pull["base"]["ref"], "sha": pull["base"].get("sha", ""), "repo": repo},
    }


def review(
    pull: Mapping[str, Any],
    review_id: int,
    author: dict[str, Any],
    state: str,
    body: str,
    when: str,
) -> dict[str, Any]:
    html = f"{pull['html_url']}#pullrequestreview-{review_id}"
    return {
        "id": review_id,
        "node_id": node_id("PullRequestReview", review_id),
        "user": author,
        "body": body,
        "state": state,
        "html_url": html,
        "pull_request_url": pull["url"],
        "commit_id": pull["head"]["sha"],
        "submitted_at": None if state == "PENDING" else when,
        "author_association": "NONE",
        "_links": {"html": {"href": html}, "pull_request": {"href": pull["url"]}},
    }


def review_comment(
    base: str,
    full_name: str,
    pull: Mapping[str, Any],
    *,
    comment_id: int,
    review_id: int,
    author: dict[str, Any],
    fields: Mapping[str, Any],
    when: str,
) -> dict[str, Any]:
    """A review comment on a line (`line`, or the older `position`) of a file."""
    line = fields.get("line", fields.get("position")) or 1
    html = f"{pull['html_url']}#discussion_r{comment_id}"
    url = f"{base}/repos/{full_name}/pulls/comments/{comment_id}"
    sha = pull["head"]["sha"]
    return {
        "url": url,
        "id": comment_id,
        "node_id": node_id("PullRequestReviewComment", comment_id),
        "pull_request_review_id": review_id,
        "diff_hunk": "@@ -1 +1 @@",
        "path": fields.get("path", ""),
        "position": line,
        "original_position": line,
        "line": line,
        "original_line": line,
        "side": fields.get("side", "RIGHT"),
        "commit_id": sha,
        "original_commit_id": sha,
        "user": author,
        "body": fields.get("body", ""),
        "created_at": when,
        "updated_at": when,
        "html_url": html,
        "pull_request_url": pull["url"],
        "author_association": "NONE",
        "_links": {
            "self": {"href": url},
            "html": {"href": html},
            "pull_request": {"href": pull["url"]},
        },
    }


def diff_entry(
    base: str, full_name: str, head_sha: str, change: Mapping[str, Any]
) -> dict[str, Any]:
    """One changed file: `change` has filename, status, sha, additions and deletions."""
    name = change["filename"]
    return {
        "sha": change["sha"],
        "filename": name,
        "status": change["status"],
        "additions": change["additions"],
        "deletions": change["deletions"],
        "changes": change["additions"] + change["deletions"],
        "blob_url": f"{base}/{full_name}/blob/{head_sha}/{name}",
        "raw_url": f"{base}/{full_name}/raw/{head_sha}/{name}",
        "contents_url": f"{base}/repos/{full_name}/contents/{name}?ref={head_sha}",
    }
