"""One valid request for each operation the GitHub stand-in serves, in the world of
tests/standin_world.py: reads before the writes that change what they read, then reads of what
the writes changed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.standin_world import REPO, Probe, World

R = "/repos/{owner}/{repo}"


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
        Probe("GET", "/app/hook/deliveries", auth="jwt"),
        Probe(
            "POST",
            "/app/hook/deliveries/{delivery_id}/attempts",
            {"delivery_id": w.delivery},
            auth="jwt",
        ),
        Probe("GET", "/user", auth="user"),
        Probe("GET", "/user/installations", auth="user"),
        Probe(
            "GET",
            "/user/installations/{installation_id}/repositories",
            {"installation_id": w.installation.id},
            auth="user",
        ),
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
