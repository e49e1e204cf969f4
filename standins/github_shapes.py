"""GitHub's REST answer shapes for the stand-in: pure builders of the JSON GitHub sends, with every
field githubkit's models require, so answers parse as `parsed_data` as well as raw JSON."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

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
        "size": 0,
        "forks": 0,
        "forks_count": 0,
        "open_issues": 0,
        "open_issues_count": 0,
        "stargazers_count": 0,
        "watchers": 0,
        "watchers_count": 0,
        "has_pages": False,
        "disabled": False,
        "archived": False,
        "visibility": "private" if private else "public",
    }
    shape.update({f"{kind}_url": f"{api}/{kind}" for kind in REPO_URLS})
    return shape


def integration(base: str, app_id: int, slug: str) -> dict[str, Any]:
    return {
        "id": app_id,
        "slug": slug,
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
    api = f"{base}/repos/{full_name}"
    html = f"{base}/{full_name}/pull/{number}"
    links = {
        "self": f"{api}/pulls/{number}",
        "html": html,
        "issue": f"{api}/issues/{number}",
        "comments": f"{api}/issues/{number}/comments",
        "review_comments": f"{api}/pulls/{number}/comments",
        "review_comment": f"{api}/pulls/comments{{/number}}",
        "commits": f"{api}/pulls/{number}/commits",
        "statuses": f"{api}/statuses/{head['sha']}",
    }
    return {
        "url": links["self"],
        "id": pull_id,
        "node_id": node_id("PullRequest", pull_id),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": links["issue"],
        "commits_url": links["commits"],
        "review_comments_url": links["review_comments"],
        "review_comment_url": links["review_comment"],
        "comments_url": links["comments"],
        "statuses_url": links["statuses"],
        "number": number,
        "state": "open",
        "locked": False,
        "title": title,
        "user": author,
        "body": body,
        "labels": [],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": created_at,
        "updated_at": created_at,
        "closed_at": None,
        "merged_at": None,
        "merge_commit_sha": None,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": head,
        "base": base_ref,
        "_links": {key: {"href": value} for key, value in links.items()},
        "author_association": "NONE",
        "auto_merge": None,
        "draft": draft,
        "merged": False,
        "mergeable": True,
        "mergeable_state": "clean",
        "merged_by": None,
        "comments": 0,
        "review_comments": 0,
        "maintainer_can_modify": False,
        "commits": 1,
        "additions": 0,
        "deletions": 0,
        "changed_files": 0,
    }


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


def check_suite(
    *,
    suite_id: int,
    repo: dict[str, Any],
    app: dict[str, Any],
    head_sha: str,
    head_branch: str | None,
    status: str,
    conclusion: str | None,
    head_commit: dict[str, Any],
    pulls: Sequence[dict[str, Any]],
    when: str,
) -> dict[str, Any]:
    api = f"{repo['url']}/check-suites/{suite_id}"
    return {
        "id": suite_id,
        "node_id": node_id("CheckSuite", suite_id),
        "head_branch": head_branch,
        "head_sha": head_sha,
        "status": status,
        "conclusion": conclusion,
        "url": api,
        "before": None,
        "after": head_sha,
        "pull_requests": list(pulls),
        "app": app,
        "repository": repo,
        "created_at": when,
        "updated_at": when,
        "head_commit": head_commit,
        "latest_check_runs_count": 0,
        "check_runs_url": f"{api}/check-runs",
        "rerequestable": True,
        "runs_rerequestable": True,
    }


def check_run(
    *,
    run_id: int,
    repo: dict[str, Any],
    app: dict[str, Any],
    suite_id: int,
    fields: Mapping[str, Any],
    pulls: Sequence[dict[str, Any]],
    when: str,
) -> dict[str, Any]:
    """A check run from the fields a client sends (name, head_sha, status, conclusion, output,
    details_url, external_id, started_at, completed_at)."""
    url = f"{repo['url']}/check-runs/{run_id}"
    conclusion = fields.get("conclusion")
    status = "completed" if conclusion else fields.get("status", "queued")
    shape: dict[str, Any] = {
        "id": run_id,
        "node_id": node_id("CheckRun", run_id),
        "name": fields.get("name", ""),
        "head_sha": fields.get("head_sha", ""),
        "external_id": fields.get("external_id", ""),
        "url": url,
        "html_url": f"{repo['html_url']}/runs/{run_id}",
        "details_url": fields.get("details_url"),
        "status": status,
        "conclusion": conclusion,
        "started_at": fields.get("started_at", when),
        "completed_at": fields.get("completed_at", when if status == "completed" else None),
        "check_suite": {"id": suite_id},
        "app": app,
        "pull_requests": list(pulls),
    }
    shape["output"] = check_output(url, fields.get("output"))
    return shape


def check_output(url: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    given = given or {}
    return {
        "title": given.get("title"),
        "summary": given.get("summary"),
        "text": given.get("text"),
        "annotations_count": len(given.get("annotations") or []),
        "annotations_url": f"{url}/annotations",
    }


def workflow_run(
    *,
    run_id: int,
    repo: dict[str, Any],
    actor: dict[str, Any],
    name: str,
    head_sha: str,
    head_branch: str,
    conclusion: str | None,
    suite_id: int,
    head_commit: dict[str, Any],
    pulls: Sequence[dict[str, Any]],
    when: str,
) -> dict[str, Any]:
    api = f"{repo['url']}/actions/runs/{run_id}"
    workflow_id = stable_id(name)
    return {
        "id": run_id,
        "name": name,
        "node_id": node_id("WorkflowRun", run_id),
        "check_suite_id": suite_id,
        "check_suite_node_id": node_id("CheckSuite", suite_id),
        "head_branch": head_branch,
        "head_sha": head_sha,
        "path": f".github/workflows/{name.lower().replace(' ', '-')}.yml",
        "display_title": head_commit["message"].splitlines()[0] if head_commit["message"] else name,
        "run_number": 1,
        "run_attempt": 1,
        "event": "push",
        "status": "completed" if conclusion else "in_progress",
        "conclusion": conclusion,
        "workflow_id": workflow_id,
        "url": api,
        "html_url": f"{repo['html_url']}/actions/runs/{run_id}",
        "pull_requests": list(pulls),
        "created_at": when,
        "updated_at": when,
        "run_started_at": when,
        "actor": actor,
        "triggering_actor": actor,
        "jobs_url": f"{api}/jobs",
        "logs_url": f"{api}/logs",
        "check_suite_url": f"{repo['url']}/check-suites/{suite_id}",
        "artifacts_url": f"{api}/artifacts",
        "cancel_url": f"{api}/cancel",
        "rerun_url": f"{api}/rerun",
        "previous_attempt_url": None,
        "workflow_url": f"{repo['url']}/actions/workflows/{workflow_id}",
        "head_commit": head_commit,
        "repository": repo,
        "head_repository": repo,
    }


def job(
    *,
    job_id: int,
    repo: dict[str, Any],
    run_id: int,
    workflow_name: str,
    name: str,
    head_sha: str,
    head_branch: str | None,
    conclusion: str | None,
    steps: Sequence[Mapping[str, Any]],
    when: str,
) -> dict[str, Any]:
    status = "completed" if conclusion else "in_progress"
    return {
        "id": job_id,
        "run_id": run_id,
        "run_url": f"{repo['url']}/actions/runs/{run_id}",
        "run_attempt": 1,
        "node_id": node_id("Job", job_id),
        "head_sha": head_sha,
        "head_branch": head_branch,
        "url": f"{repo['url']}/actions/jobs/{job_id}",
        "html_url": f"{repo['html_url']}/actions/runs/{run_id}/job/{job_id}",
        "status": status,
        "conclusion": conclusion,
        "created_at": when,
        "started_at": when,
        "completed_at": when if conclusion else None,
        "name": name,
        "steps": [
            {
                "name": step["name"],
                "status": "completed" if step.get("conclusion") else "in_progress",
                "conclusion": step.get("conclusion"),
                "number": number,
                "started_at": when,
                "completed_at": when,
            }
            for number, step in enumerate(steps, 1)
        ],
        "check_run_url": f"{repo['url']}/check-runs/{job_id}",
        "labels": ["ubuntu-latest"],
        "runner_id": 1,
        "runner_name": "GitHub Actions 1",
        "runner_group_id": 1,
        "runner_group_name": "GitHub Actions",
        "workflow_name": workflow_name,
    }


def deployment(
    *,
    deployment_id: int,
    repo: dict[str, Any],
    creator: dict[str, Any],
    ref: str,
    sha: str,
    environment: str,
    task: str,
    description: str | None,
    payload: Any,
    when: str,
) -> dict[str, Any]:
    url = f"{repo['url']}/deployments/{deployment_id}"
    return {
        "url": url,
        "id": deployment_id,
        "node_id": node_id("Deployment", deployment_id),
        "sha": sha,
        "ref": ref,
        "task": task,
        "payload": payload if payload is not None else {},
        "original_environment": environment,
        "environment": environment,
        "description": description,
        "creator": creator,
        "created_at": when,
        "updated_at": when,
        "statuses_url": f"{url}/statuses",
        "repository_url": repo["url"],
        "transient_environment": False,
        "production_environment": environment == "production",
    }


def deployment_status(
    *,
    status_id: int,
    deployment: Mapping[str, Any],
    creator: dict[str, Any],
    state: str,
    description: str,
    log_url: str,
    target_url: str,
    environment_url: str,
    when: str,
) -> dict[str, Any]:
    return {
        "url": f"{deployment['url']}/statuses/{status_id}",
        "id": status_id,
        "node_id": node_id("DeploymentStatus", status_id),
        "state": state,
        "creator": creator,
        "description": description,
        "environment": deployment["environment"],
        "target_url": target_url or log_url,
        "log_url": log_url or target_url,
        "environment_url": environment_url,
        "created_at": when,
        "updated_at": when,
        "deployment_url": deployment["url"],
        "repository_url": deployment["repository_url"],
    }
