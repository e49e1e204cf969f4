"""A world for probing the GitHub stand-in against GitHub's description: a stand-in holding one
of everything (an issue with comments and labels, open, merged and fork pull requests with a
review, other Apps' check suites, an Actions run with a failed job, a deployment), and one
valid request for each operation it serves, reads before the writes that change what they
read, then reads of what the writes changed."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from standins.github import GitHubStandIn

PERMISSIONS = {
    "metadata": "read",
    "contents": "write",
    "issues": "write",
    "pull_requests": "write",
    "checks": "write",
    "statuses": "write",
    "actions": "write",
    "deployments": "write",
}
REPO = "octo/widgets"
R = "/repos/{owner}/{repo}"


@dataclass(frozen=True)
class Probe:
    method: str
    path: str  # GitHub's template
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    auth: str = "token"  # "token" (installation), "jwt" (the App)
    query: str = ""

    def url(self) -> str:
        path = self.path.format(**{"owner": "octo", "repo": "widgets", **self.params})
        return f"{path}?{self.query}" if self.query else path


class World:
    """A stand-in with one of everything, and the ids of what it holds."""

    def __init__(self, gh: GitHubStandIn) -> None:
        self.gh = gh
        self.app = gh.create_app()
        gh.create_repo(REPO, {"README.md": "# widgets\n", "src/app.py": "x = 1\n"})
        self.installation = gh.install(self.app, "octo", [REPO], PERMISSIONS)
        gh.add_collaborator(REPO, "alice", "maintain")
        self.issue = gh.create_issue(REPO, "add() is wrong", "It subtracts.", labels=["bug"])
        self.comment = gh.create_comment(REPO, self.issue["number"], "me too")
        self.main = gh.branch_sha(REPO, "main") or ""
        self.head = gh.commit(REPO, "fix", {"src/app.py": "x = 2\n"}, "Fix x")
        self.pull = gh.create_pull(REPO, "fix", "Fix x", "alice")
        gh.commit(REPO, "feature", {"new.txt": "new\n"}, "New")  # for a new pull request
        gh.commit(REPO, "done", {"done.txt": "done\n"}, "Done")
        self.merged = gh.create_pull(REPO, "done", "Done", "alice")
        self.merge = gh.merge_pull(REPO, self.merged["number"])
        gh.create_fork_pull(REPO, "alice/widgets", "idea", {"idea.txt": "?\n"}, "Idea", "alice")
        self.review = gh.add_review(
            REPO, self.pull["number"], "bob", "CHANGES_REQUESTED", "no", [("src/app.py", 1, "?")]
        )
        self.review_comment = next(iter(gh.state.review_comments.values()))
        self.suite = gh.create_check_suite(
            REPO,
            head_sha=self.head,
            head_branch="fix",
            check_runs=[{"name": "lint", "conclusion": "failure", "output": {"title": "t"}}],
        )
        self.run = gh.create_workflow_run(
            REPO,
            name="CI",
            head_sha=self.head,
            head_branch="fix",
            jobs=[{"name": "test", "conclusion": "failure", "log": "boom"}],
        )
        self.job = next(iter(gh.state.jobs.values()))
        self.check_run = next(iter(gh.state.check_runs.values()))
        self.deployment = gh.create_deployment(REPO, ref="main", sha=self.main)
        self.deployment_status = gh.add_deployment_status(
            REPO, self.deployment["id"], state="success", log_url="https://ci.example/1"
        )
        self.token = _installation_token(gh, self.app, self.installation.id)
        self.client = httpx.Client(timeout=30)
        self.jwt = _jwt(self.app)  # signing takes a tenth of a second: once

    def headers(self, auth: str) -> dict[str, str]:
        if auth == "jwt":
            return {"Authorization": f"Bearer {self.jwt}"}
        if auth == "token":
            return {"Authorization": f"token {self.token}"}
        return {}


def _jwt(app: Any) -> str:
    import time

    import jwt

    now = int(time.time())
    claims = {"iss": str(app.id), "iat": now - 30, "exp": now + 500}
    return jwt.encode(claims, app.private_key_pem, algorithm="RS256")


def _installation_token(gh: GitHubStandIn, app: Any, installation_id: int) -> str:
    answer = httpx.post(
        f"{gh.url}/app/installations/{installation_id}/access_tokens",
        headers={"Authorization": f"Bearer {_jwt(app)}"},
    )
    answer.raise_for_status()
    return str(answer.json()["token"])


def _jwt(app: Any) -> str:
    import time

    import jwt

    now = int(time.time())
    claims = {"iss": str(app.id), "iat": now - 30, "exp": now + 500}
    return jwt.encode(claims, app.private_key_pem, algorithm="RS256")


def _installation_token(gh: GitHubStandIn, app: Any, installation_id: int) -> str:
    answer = httpx.post(
        f"{gh.url}/app/installations/{installation_id}/access_tokens",
        headers={"Authorization": f"Bearer {_jwt(app)}"},
    )
    answer.raise_for_status()
    return str(answer.json()["token"])


def probes(w: World) -> list[Probe]:
    return [
        *_app_probes(w),
        *_git_probes(w),
        *_issue_probes(w),
        *_pull_probes(w),
        *_check_probes(w),
    ]


def _app_probes(w: World) -> list[Probe]:
    token = {"repositories": ["widgets"], "permissions": {"contents": "read"}}
    return [
        Probe("GET", "/app", auth="jwt"),
        Probe(
            "POST",
            "/app/installations/{installation_id}/access_tokens",
            {"installation_id": w.installation.id},
            token,
            auth="jwt",
        ),
        Probe("GET", R + "/installation", auth="jwt"),
        Probe("GET", R),
        Probe("GET", R + "/branches/{branch}", {"branch": "main"}),
        Probe("GET", R + "/contents/{path}", {"path": "src/app.py"}),
        Probe("GET", R + "/contents/{path}", {"path": "src"}),
        Probe("GET", R + "/collaborators/{username}/permission", {"username": "alice"}),
        Probe("GET", R + "/git/ref/{ref}", {"ref": "heads/main"}),
    ]


def _git_probes(w: World) -> list[Probe]:
    git, path = R + "/git", w.gh.state.repos[REPO].path
    tree = _git(path, "rev-parse", f"{w.main}^{{tree}}")
    blob = _git(path, "rev-parse", f"{w.main}:README.md")
    entry = {"path": "n.txt", "mode": "100644", "type": "blob", "content": "n\n"}
    return [
        Probe("POST", git + "/blobs", body={"content": "aGk=", "encoding": "base64"}),
        Probe("GET", git + "/blobs/{file_sha}", {"file_sha": blob}),
        Probe("POST", git + "/trees", body={"base_tree": tree, "tree": [entry]}),
        Probe("GET", git + "/trees/{tree_sha}", {"tree_sha": tree}),
        Probe("POST", git + "/commits", body={"message": "m", "tree": tree, "parents": [w.main]}),
        Probe("GET", git + "/commits/{commit_sha}", {"commit_sha": w.main}),
        Probe("GET", R + "/commits/{ref}", {"ref": w.main}),
        Probe("POST", git + "/refs", body={"ref": "refs/heads/probe", "sha": w.main}),
        Probe("PATCH", git + "/refs/{ref}", {"ref": "heads/probe"}, {"sha": w.head}),
    ]


def _git(path: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=path, capture_output=True, text=True, check=True
    ).stdout.strip()


def _issue_probes(w: World) -> list[Probe]:
    issue, comment = R + "/issues/{issue_number}", R + "/issues/comments/{comment_id}"
    number, at = {"issue_number": w.issue["number"]}, {"comment_id": w.comment["id"]}
    return [
        Probe("GET", issue, number),
        Probe("GET", issue, {"issue_number": w.pull["number"]}),
        Probe("GET", issue + "/comments", number),
        Probe("POST", issue + "/comments", number, {"body": "On it"}),
        Probe("GET", comment, at),
        Probe("PATCH", comment, at, {"body": "me too!"}),
        Probe("POST", comment + "/reactions", at, {"content": "eyes"}),
        Probe("GET", issue + "/labels", number),
        Probe("POST", issue + "/labels", number, {"labels": ["shipmate"]}),
        Probe("DELETE", issue + "/labels/{name}", {**number, "name": "bug"}),
        Probe("POST", issue + "/reactions", number, {"content": "+1"}),
    ]


def _pull_probes(w: World) -> list[Probe]:
    pull, number = R + "/pulls/{pull_number}", {"pull_number": w.pull["number"]}
    review = {**number, "review_id": w.review["id"]}
    comment = {**number, "comment_id": w.review_comment["id"]}
    edit = {"title": "Fix x, really", "body": "Fixes #1", "state": "closed"}
    new = {"title": "New", "head": "feature", "base": "main", "body": "new", "draft": True}
    reviewed = {"event": "COMMENT", "body": "Looks fine", "comments": []}
    return [
        Probe("GET", R + "/pulls"),
        Probe("GET", pull, number),
        Probe("GET", pull + "/files", number),
        Probe("GET", pull + "/reviews", number),
        Probe("GET", pull + "/reviews/{review_id}", review),
        Probe("GET", pull + "/reviews/{review_id}/comments", review),
        Probe("GET", pull + "/comments", number),
        Probe("GET", R + "/pulls/comments/{comment_id}", {"comment_id": w.review_comment["id"]}),
        Probe("GET", R + "/commits/{commit_sha}/pulls", {"commit_sha": w.head}),
        Probe("POST", pull + "/comments/{comment_id}/replies", comment, {"body": "Fixed"}),
        Probe("POST", pull + "/reviews", number, reviewed),
        Probe("PATCH", pull, number, edit),
        Probe("GET", R + "/pulls", query="state=all"),
        Probe("GET", R + "/commits/{commit_sha}/pulls", {"commit_sha": w.merge}),
        Probe("GET", R + "/issues/{issue_number}", {"issue_number": w.merged["number"]}),
        Probe("POST", R + "/pulls", body=new),
    ]


def _check_probes(w: World) -> list[Probe]:
    run, suite = R + "/check-runs/{check_run_id}", R + "/check-suites/{check_suite_id}"
    check, in_suite = {"check_run_id": w.check_run["id"]}, {"check_suite_id": w.suite["id"]}
    head, status = {"ref": w.head}, {"state": "pending", "context": "shipmate", "description": "x"}
    made = {"name": "Shipmate", "head_sha": w.head, "status": "in_progress"}
    done = {"conclusion": "success", "output": {"title": "ok", "summary": "fine"}}
    return [
        Probe("GET", run, check),
        Probe("GET", suite, in_suite),
        Probe("GET", suite + "/check-runs", in_suite),
        Probe("GET", R + "/commits/{ref}/check-runs", {"ref": "fix"}),
        Probe("GET", R + "/commits/{ref}/check-suites", head),
        Probe("POST", R + "/statuses/{sha}", {"sha": w.head}, status),
        Probe("GET", R + "/commits/{ref}/status", head),
        Probe("GET", R + "/commits/{ref}/statuses", head),
        Probe("POST", R + "/check-runs", body=made),
        Probe("PATCH", run, check, done),
        Probe("GET", run, check),
        Probe("GET", R + "/commits/{ref}/check-suites", head),
        *_actions_probes(w),
        *_deployment_probes(w),
    ]


def _actions_probes(w: World) -> list[Probe]:
    runs, run = R + "/actions/runs", {"run_id": w.run["id"]}
    job = {"job_id": w.job["id"]}
    reads = [
        Probe("GET", runs + "/{run_id}", run),
        Probe("GET", runs + "/{run_id}/jobs", run),
        Probe(
            "GET", runs + "/{run_id}/attempts/{attempt_number}/jobs", {**run, "attempt_number": 1}
        ),
    ]
    return [
        Probe("GET", runs),
        *reads,
        Probe(
            "GET",
            R + "/actions/workflows/{workflow_id}/runs",
            {"workflow_id": w.run["workflow_id"]},
        ),
        Probe("GET", R + "/actions/jobs/{job_id}", job),
        Probe("GET", R + "/actions/jobs/{job_id}/logs", job),
        Probe("POST", runs + "/{run_id}/rerun-failed-jobs", run),
        *reads,
        Probe(
            "GET", runs + "/{run_id}/attempts/{attempt_number}/jobs", {**run, "attempt_number": 2}
        ),
    ]


def _deployment_probes(w: World) -> list[Probe]:
    one, deployment = R + "/deployments/{deployment_id}", {"deployment_id": w.deployment["id"]}
    status = {**deployment, "status_id": w.deployment_status["id"]}
    new = {"ref": "main", "environment": "staging", "auto_merge": False, "required_contexts": []}
    return [
        Probe("GET", R + "/deployments"),
        Probe("GET", one, deployment),
        Probe("GET", one + "/statuses", deployment),
        Probe("GET", one + "/statuses/{status_id}", status),
        Probe(
            "POST",
            one + "/statuses",
            deployment,
            {"state": "in_progress", "log_url": "https://ci.example/2"},
        ),
        Probe("POST", R + "/deployments", body=new),
    ]
