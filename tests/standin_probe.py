"""Probes of the GitHub stand-in against GitHub's own description: one request per operation
it serves, in a world where every answer has something to show; bodies that break each
request schema; and method and path pairs GitHub does not describe. Used by
tests/test_standin_openapi.py, and by hand to measure a stand-in:

    python -m tests.standin_probe
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from standins.github import GitHubStandIn
from standins.github_openapi import METHODS, Description, Operation, description

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


@dataclass(frozen=True)
class Probe:
    method: str
    path: str  # GitHub's template
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    auth: str = "token"  # "token" (installation), "jwt" (the App), "none"

    def url(self) -> str:
        return self.path.format(**{"owner": "octo", "repo": "widgets", **self.params})


@dataclass
class Report:
    answers: int = 0
    missing: list[str] = field(default_factory=list)  # answers that miss the description
    refused: list[str] = field(default_factory=list)  # valid probes that did not answer 2xx
    foreign: list[str] = field(default_factory=list)  # undescribed pairs that answered 2xx
    foreign_tried: int = 0
    missing_tried: int = 0
    invalid_tried: int = 0
    invalid_accepted: list[str] = field(default_factory=list)


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


def probes(world: World) -> list[Probe]:
    """One valid request per operation, reads before the writes that change what they read."""
    w, repo_path = world, "/repos/{owner}/{repo}"
    number, pull = w.issue["number"], w.pull["number"]
    return [
        Probe("GET", "/app", auth="jwt"),
        Probe(
            "POST",
            "/app/installations/{installation_id}/access_tokens",
            {"installation_id": w.installation.id},
            {"repositories": ["widgets"], "permissions": {"contents": "read"}},
            auth="jwt",
        ),
        Probe("GET", f"{repo_path}/installation", auth="jwt"),
        Probe("GET", repo_path),
        Probe("GET", repo_path + "/branches/{branch}", {"branch": "main"}),
        Probe("GET", repo_path + "/contents/{path}", {"path": "src/app.py"}),
        Probe("GET", repo_path + "/collaborators/{username}/permission", {"username": "alice"}),
        Probe("GET", repo_path + "/git/ref/{ref}", {"ref": "heads/main"}),
        Probe("GET", repo_path + "/issues/{issue_number}", {"issue_number": number}),
        Probe("GET", repo_path + "/issues/{issue_number}", {"issue_number": pull}),
        Probe("GET", repo_path + "/issues/{issue_number}/comments", {"issue_number": number}),
        Probe(
            "POST",
            repo_path + "/issues/{issue_number}/comments",
            {"issue_number": number},
            {"body": "On it"},
        ),
        Probe("GET", repo_path + "/issues/comments/{comment_id}", {"comment_id": w.comment["id"]}),
        Probe(
            "PATCH",
            repo_path + "/issues/comments/{comment_id}",
            {"comment_id": w.comment["id"]},
            {"body": "me too!"},
        ),
        Probe(
            "POST",
            repo_path + "/issues/comments/{comment_id}/reactions",
            {"comment_id": w.comment["id"]},
            {"content": "eyes"},
        ),
        Probe("GET", repo_path + "/issues/{issue_number}/labels", {"issue_number": number}),
        Probe(
            "POST",
            repo_path + "/issues/{issue_number}/labels",
            {"issue_number": number},
            {"labels": ["shipmate"]},
        ),
        Probe(
            "DELETE",
            repo_path + "/issues/{issue_number}/labels/{name}",
            {"issue_number": number, "name": "bug"},
        ),
        Probe(
            "POST",
            repo_path + "/issues/{issue_number}/reactions",
            {"issue_number": number},
            {"content": "+1"},
        ),
        *_pull_probes(w, repo_path),
        *_ci_probes(w, repo_path),
    ]


def _pull_probes(w: World, repo_path: str) -> list[Probe]:
    pull = w.pull["number"]
    review, comment = w.review["id"], w.review_comment["id"]
    return [
        Probe("GET", repo_path + "/pulls"),
        Probe("GET", repo_path + "/pulls/{pull_number}", {"pull_number": pull}),
        Probe("GET", repo_path + "/pulls/{pull_number}/files", {"pull_number": pull}),
        Probe("GET", repo_path + "/pulls/{pull_number}/reviews", {"pull_number": pull}),
        Probe(
            "GET",
            repo_path + "/pulls/{pull_number}/reviews/{review_id}",
            {"pull_number": pull, "review_id": review},
        ),
        Probe(
            "GET",
            repo_path + "/pulls/{pull_number}/reviews/{review_id}/comments",
            {"pull_number": pull, "review_id": review},
        ),
        Probe("GET", repo_path + "/pulls/{pull_number}/comments", {"pull_number": pull}),
        Probe("GET", repo_path + "/pulls/comments/{comment_id}", {"comment_id": comment}),
        Probe("GET", repo_path + "/commits/{commit_sha}/pulls", {"commit_sha": w.head}),
        Probe(
            "POST",
            repo_path + "/pulls/{pull_number}/comments/{comment_id}/replies",
            {"pull_number": pull, "comment_id": comment},
            {"body": "Fixed"},
        ),
        Probe(
            "POST",
            repo_path + "/pulls/{pull_number}/reviews",
            {"pull_number": pull},
            {"event": "COMMENT", "body": "Looks fine", "comments": []},
        ),
        Probe(
            "PATCH",
            repo_path + "/pulls/{pull_number}",
            {"pull_number": pull},
            {"title": "Fix x, really", "body": "Fixes #1"},
        ),
        Probe(
            "POST",
            repo_path + "/pulls",
            body={"title": "New", "head": "feature", "base": "main", "body": "new", "draft": True},
        ),
    ]


def _ci_probes(w: World, repo_path: str) -> list[Probe]:
    run, job, deployment = w.run["id"], w.job["id"], w.deployment["id"]
    check = {"check_run_id": w.check_run["id"]}
    return [
        Probe("GET", repo_path + "/check-runs/{check_run_id}", check),
        Probe(
            "GET", repo_path + "/check-suites/{check_suite_id}", {"check_suite_id": w.suite["id"]}
        ),
        Probe(
            "GET",
            repo_path + "/check-suites/{check_suite_id}/check-runs",
            {"check_suite_id": w.suite["id"]},
        ),
        Probe("GET", repo_path + "/commits/{ref}/check-runs", {"ref": "fix"}),
        Probe("GET", repo_path + "/commits/{ref}/check-suites", {"ref": w.head}),
        Probe(
            "POST",
            repo_path + "/statuses/{sha}",
            {"sha": w.head},
            {"state": "pending", "context": "shipmate", "description": "checking"},
        ),
        Probe("GET", repo_path + "/commits/{ref}/status", {"ref": w.head}),
        Probe("GET", repo_path + "/commits/{ref}/statuses", {"ref": w.head}),
        Probe(
            "POST",
            repo_path + "/check-runs",
            body={"name": "Shipmate", "head_sha": w.head, "status": "in_progress"},
        ),
        Probe(
            "PATCH",
            repo_path + "/check-runs/{check_run_id}",
            check,
            {"conclusion": "success", "output": {"title": "ok", "summary": "fine"}},
        ),
        Probe("GET", repo_path + "/actions/runs"),
        Probe("GET", repo_path + "/actions/runs/{run_id}", {"run_id": run}),
        Probe("GET", repo_path + "/actions/runs/{run_id}/jobs", {"run_id": run}),
        Probe(
            "GET",
            repo_path + "/actions/runs/{run_id}/attempts/{attempt_number}/jobs",
            {"run_id": run, "attempt_number": 1},
        ),
        Probe(
            "GET",
            repo_path + "/actions/workflows/{workflow_id}/runs",
            {"workflow_id": w.run["workflow_id"]},
        ),
        Probe("GET", repo_path + "/actions/jobs/{job_id}", {"job_id": job}),
        Probe("GET", repo_path + "/actions/jobs/{job_id}/logs", {"job_id": job}),
        Probe("POST", repo_path + "/actions/runs/{run_id}/rerun-failed-jobs", {"run_id": run}),
        Probe("GET", repo_path + "/deployments"),
        Probe("GET", repo_path + "/deployments/{deployment_id}", {"deployment_id": deployment}),
        Probe(
            "GET",
            repo_path + "/deployments/{deployment_id}/statuses",
            {"deployment_id": deployment},
        ),
        Probe(
            "GET",
            repo_path + "/deployments/{deployment_id}/statuses/{status_id}",
            {"deployment_id": deployment, "status_id": w.deployment_status["id"]},
        ),
        Probe(
            "POST",
            repo_path + "/deployments/{deployment_id}/statuses",
            {"deployment_id": deployment},
            {"state": "in_progress", "log_url": "https://ci.example/2"},
        ),
        Probe(
            "POST",
            repo_path + "/deployments",
            body={
                "ref": "main",
                "environment": "staging",
                "auto_merge": False,
                "required_contexts": [],
            },
        ),
    ]


def send(world: World, probe: Probe, body: Any = None, method: str | None = None) -> httpx.Response:
    content = None if body is None else json.dumps(body).encode()
    return world.client.request(
        method or probe.method,
        world.gh.url + probe.url(),
        content=content,
        headers={**world.headers(probe.auth), "Content-Type": "application/json"},
        follow_redirects=False,
        timeout=30,
    )


def check_answer(
    spec: Description, operation: Operation, answer: httpx.Response, report: Report, label: str
) -> None:
    report.answers += 1
    if not answer.headers.get("content-type", "").startswith("application/json"):
        problems = [] if answer.status_code in (204, 302) else ["not JSON"]
    else:
        problems = spec.answer_problems(operation, answer.status_code, answer.json())
    if problems:
        report.missing.append(f"{label} {answer.status_code}: {problems[:3]}")


def breakers(spec: Description, operation: Operation, valid: Any) -> Iterator[tuple[str, Any]]:
    """Bodies the description refuses: the valid one without each required field, each of its
    fields of a wrong type or outside its enum, and a body that is not an object."""
    if operation.body_pointer is None:
        return
    schema = spec.resolve(operation.body_pointer) or {}
    base = dict(valid or {})
    candidates: list[tuple[str, Any]] = [("not an object", ["x"])]
    for name in schema.get("required", []):
        candidates.append((f"without {name}", {k: v for k, v in base.items() if k != name}))
    for name, prop in (schema.get("properties") or {}).items():
        wrong = {"string": 12345, "integer": "x", "number": "x", "boolean": "yes"}
        wrong |= {"array": "x", "object": "x"}
        kind = prop.get("type")
        if isinstance(kind, str) and kind in wrong:
            candidates.append((f"{name} of a wrong type", {**base, name: wrong[kind]}))
        if "enum" in prop:
            candidates.append((f"{name} outside its enum", {**base, name: "not-a-member"}))
    validator = spec.validator(operation.body_pointer)
    for label, body in candidates:
        if not validator.is_valid(body):
            yield label, body


def run(world: World) -> Report:
    spec, report = description(), Report()
    for probe in probes(world):
        operation = spec.operation(probe.method, probe.path)
        assert operation is not None, f"{probe.method} {probe.path} is not GitHub's"
        label = f"{probe.method} {probe.path}"
        answer = send(world, probe, probe.body)
        if not 200 <= answer.status_code < 400:
            report.refused.append(f"{label}: {answer.status_code} {answer.text[:200]}")
        check_answer(spec, operation, answer, report, label)
        for name, body in breakers(spec, operation, probe.body):
            report.invalid_tried += 1
            answer = send(world, probe, body)
            if answer.status_code < 400:
                report.invalid_accepted.append(f"{label} {name}: {answer.status_code}")
            elif operation.response_pointer(answer.status_code, spec):
                check_answer(spec, operation, answer, report, f"{label} {name}")
    _missing(world, spec, report)
    _foreign(world, spec, report)
    return report


def _missing(world: World, spec: Description, report: Report) -> None:
    """What a path names that does not exist is a 404, in GitHub's shape where it has one."""
    for probe in probes(world):
        operation = spec.operation(probe.method, probe.path)
        assert operation is not None
        for name in sorted(operation.integer_params & set(probe.params)):
            absent = Probe(
                probe.method, probe.path, {**probe.params, name: 987654321}, auth=probe.auth
            )
            answer = send(world, absent, probe.body)
            label = f"{probe.method} {probe.path} with no such {name}"
            report.missing_tried += 1
            if answer.status_code != 404:
                report.refused.append(f"{label}: {answer.status_code}, not 404")
            elif operation.response_pointer(404, spec):
                check_answer(spec, operation, answer, report, label)


FOREIGN_PATHS = (
    "/nope/nothing",
    "/repos/{owner}/{repo}/collaborators/alice/permission/extra",
    "/repos/{owner}/{repo}/issues/1/comments/2",
    "/repos/{owner}/{repo}/issues/comments",
    "/repos/{owner}/{repo}/branches",
    "/repos/{owner}/{repo}/check-runs",
    "/repos/{owner}/{repo}/pulls/1/merge",
    "/repos/{owner}/{repo}/actions/runs/1/rerun",
    "/repos/{owner}/{repo}/deployments/1/statuses/2/extra",
)


def _foreign(world: World, spec: Description, report: Report) -> None:
    """Each method GitHub does not describe on each probed path must not answer 2xx."""
    seen: dict[str, Probe] = {}
    for probe in probes(world):
        seen.setdefault(probe.path, probe)
    for path, probe in seen.items():
        for method in (m.upper() for m in METHODS):
            if spec.operation(method, path) is not None:
                continue
            report.foreign_tried += 1
            answer = send(world, probe, probe.body or {}, method=method)
            if 200 <= answer.status_code < 300:
                report.foreign.append(f"{method} {path}: {answer.status_code}")
    for path in FOREIGN_PATHS:
        for method in (m.upper() for m in METHODS):
            if spec.operation(method, path) is not None:
                continue
            report.foreign_tried += 1
            answer = send(world, Probe(method, path), {}, method=method)
            if 200 <= answer.status_code < 300:
                report.foreign.append(f"{method} {path}: {answer.status_code}")


def summary(report: Report) -> str:
    return (
        f"{len(report.missing)} of {report.answers} JSON answers miss the description; "
        f"{len(report.foreign)} of {report.foreign_tried} undescribed method+path pairs answer "
        f"2xx; {len(report.invalid_accepted)} of {report.invalid_tried} requests the "
        f"description refuses are accepted; {len(report.refused)} valid probes refused"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, GitHubStandIn(Path(tmp)) as gh:
        report = run(World(gh))
    print(summary(report))
    for kind in ("missing", "foreign", "invalid_accepted", "refused"):
        for line in getattr(report, kind):
            print(f"  {kind}: {line}")


if __name__ == "__main__":
    main()
