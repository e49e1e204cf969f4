"""The GitHub stand-in's CI routes: check runs and suites, commit statuses, Actions workflow
runs and jobs, and deployments, each with GitHub's permission checks."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from standins import github_actions
from standins import github_shapes as shapes
from standins.github_common import (
    DEPLOYMENT_STATES,
    NotFound,
    Token,
    now_iso,
    owned,
    path_id,
    public,
)

if TYPE_CHECKING:
    from standins.github import GitHubStandIn


def checks(
    gh: GitHubStandIn,
    request: Request,
    repo: str,
    rest: list[str],
    body: dict[str, Any],
    token: Token | None,
) -> Response:
    method = request.method
    if rest[0] == "check-runs":
        return _check_runs(gh, request, repo, rest[1:], body, token)
    if rest[0] == "check-suites" and len(rest) in (2, 3):
        denied = gh._allowed(token, repo, "checks", "read")
        if denied:
            return denied
        suite = owned(gh.state.check_suites, rest[1], repo)
        if len(rest) == 2 and method == "GET":
            return gh._json(gh._suite_out(suite))
        if rest[2] == "check-runs" and method == "GET":
            return _listed_runs(gh, request, gh._suite_runs(suite["id"]))
        raise NotFound
    if rest[0] == "statuses" and len(rest) == 2 and method == "POST":
        denied = gh._allowed(token, repo, "statuses", "write")
        if denied:
            return denied
        return _create_status(gh, repo, rest[1], body, token)
    if rest[0] == "commits" and len(rest) == 3 and method == "GET":
        return _commit_checks(gh, request, repo, rest[1], rest[2], token)
    raise NotFound


def _commit_checks(
    gh: GitHubStandIn, request: Request, repo: str, ref: str, kind: str, token: Token | None
) -> Response:
    """A commit's check runs, check suites, combined status or statuses."""
    permission = {"check-runs": "checks", "check-suites": "checks"}.get(kind, "statuses")
    if kind not in ("check-runs", "check-suites", "status", "statuses"):
        raise NotFound
    denied = gh._allowed(token, repo, permission, "read")
    if denied:
        return denied
    sha = gh.resolve(repo, ref)
    if sha is None:
        return gh._error(422, f"No commit found for SHA: {ref}")
    if kind == "check-runs":
        runs = [
            r for r in gh.state.check_runs.values() if r["_repo"] == repo and r["head_sha"] == sha
        ]
        return _listed_runs(gh, request, runs)
    if kind == "check-suites":
        return _listed_suites(gh, request, repo, sha)
    return _commit_status(gh, request, repo, sha, kind)


def _check_runs(
    gh: GitHubStandIn,
    request: Request,
    repo: str,
    rest: list[str],
    body: dict[str, Any],
    token: Token | None,
) -> Response:
    method = request.method
    write = method in ("POST", "PATCH")
    denied = gh._allowed(token, repo, "checks", "write" if write else "read")
    if denied:
        return denied
    if write and not _actions_fit(body.get("actions")):
        # GitHub: at most three, label <= 20, identifier <= 20, description <= 40 characters.
        return gh._invalid("CheckRun", "actions", "invalid")
    if not rest and method == "POST":
        missing = [f for f in ("name", "head_sha") if not body.get(f)]
        if missing:
            return gh._invalid("CheckRun", missing[0], "missing_field")
        sha = gh.resolve(repo, str(body["head_sha"]))
        if sha is None:
            return gh._invalid("CheckRun", "head_sha", "invalid")
        slug = token.installation.app.slug if token else "ghost"
        run = gh._new_check_run(repo, gh._app_suite(repo, sha, slug), {**body, "head_sha": sha})
        return gh._json(public(run), 201)
    if len(rest) != 1 or method not in ("GET", "PATCH"):
        raise NotFound
    existing = owned(gh.state.check_runs, rest[0], repo)
    if method == "PATCH":
        _update_check_run(gh, existing, body)
    return gh._json(public(existing))


def _actions_fit(actions: Any) -> bool:
    if actions is None:
        return True
    limits = {"label": 20, "identifier": 20, "description": 40}
    return (
        isinstance(actions, list)
        and len(actions) <= 3
        and all(
            isinstance(a, dict)
            and set(a) == set(limits)
            and all(isinstance(a[k], str) and 0 < len(a[k]) <= n for k, n in limits.items())
            for a in actions
        )
    )


def _update_check_run(gh: GitHubStandIn, run: dict[str, Any], body: Mapping[str, Any]) -> None:
    for name in ("name", "details_url", "external_id", "started_at", "status"):
        if name in body:
            run[name] = body[name]
    if "actions" in body:
        run["_actions"] = list(body["actions"] or [])
    if body.get("conclusion"):
        run.update(status="completed", conclusion=body["conclusion"])
    if run["status"] == "completed" and not run.get("completed_at"):
        run["completed_at"] = body.get("completed_at") or now_iso()
    if "output" in body:
        merged = {
            **{k: run["output"][k] for k in ("title", "summary", "text")},
            **body["output"],
        }
        run["output"] = shapes.check_output(run["url"], merged)


def _listed_runs(gh: GitHubStandIn, request: Request, runs: list[dict[str, Any]]) -> Response:
    query = request.query_params
    if query.get("check_name"):
        runs = [r for r in runs if r["name"] == query["check_name"]]
    if query.get("status"):
        runs = [r for r in runs if r["status"] == query["status"]]
    if query.get("app_id"):
        runs = [r for r in runs if str(r["app"]["id"]) == query["app_id"]]
    return gh._paginate(request, [public(r) for r in runs], key="check_runs")


def _listed_suites(gh: GitHubStandIn, request: Request, repo: str, sha: str) -> Response:
    suites = [
        gh._suite_out(s)
        for s in gh.state.check_suites.values()
        if s["_repo"] == repo and s["head_sha"] == sha
    ]
    app_id = request.query_params.get("app_id")
    if app_id:
        suites = [s for s in suites if str(s["app"]["id"]) == app_id]
    name = request.query_params.get("check_name")
    if name:
        suites = [s for s in suites if any(r["name"] == name for r in gh._suite_runs(s["id"]))]
    return gh._paginate(request, suites, key="check_suites")


def _create_status(
    gh: GitHubStandIn, repo: str, sha_or_ref: str, body: Mapping[str, Any], token: Token | None
) -> Response:
    sha = gh.resolve(repo, sha_or_ref)
    if sha is None:
        return gh._error(422, f"No commit found for SHA: {sha_or_ref}")
    if body.get("state") not in ("error", "failure", "pending", "success"):
        return gh._invalid("Status", "state", "invalid")
    status_id = gh.next_id()
    status = {
        "url": f"{gh.url}/repos/{repo}/statuses/{sha}",
        "avatar_url": None,
        "id": status_id,
        "node_id": shapes.node_id("StatusContext", status_id),
        "state": body["state"],
        "description": body.get("description"),
        "target_url": body.get("target_url"),
        "context": body.get("context") or "default",
        "created_at": now_iso(),
        "updated_at": now_iso(),
        "creator": gh._user(gh._bot(token)),
        "_repo": repo,
        "_sha": sha,
    }
    gh.state.statuses.append(status)
    return gh._json(public(status), 201)


def _commit_status(gh: GitHubStandIn, request: Request, repo: str, sha: str, kind: str) -> Response:
    mine = [public(s) for s in gh.state.statuses if s["_repo"] == repo and s["_sha"] == sha]
    newest_first = list(reversed(mine))
    if kind == "statuses":
        return gh._paginate(request, newest_first)
    latest: dict[str, dict[str, Any]] = {}
    for status in newest_first:
        latest.setdefault(str(status["context"]), status)
    states = [s["state"] for s in latest.values()]
    overall = (
        "failure"
        if any(s in ("failure", "error") for s in states)
        else "pending"
        if not states or "pending" in states
        else "success"
    )
    return gh._json(
        {
            "state": overall,
            "sha": sha,
            "statuses": list(latest.values()),
            "total_count": len(latest),
            "repository": gh._repo_json(gh.state.repos[repo]),
            "commit_url": f"{gh.url}/repos/{repo}/commits/{sha}",
            "url": f"{gh.url}/repos/{repo}/commits/{sha}/status",
        }
    )


def actions(
    gh: GitHubStandIn, request: Request, repo: str, rest: list[str], token: Token | None
) -> Response:
    if request.method == "POST" or rest[:1] == ["workflows"] or rest[2:3] == ["attempts"]:
        return github_actions.route(gh, request, repo, rest, token)
    if request.method != "GET":
        raise NotFound
    denied = gh._allowed(token, repo, "actions", "read")
    if denied:
        return denied
    state = gh.state
    if rest == ["runs"]:
        runs = [r for r in state.workflow_runs.values() if r["_repo"] == repo]
        for name in ("head_sha", "branch", "status", "conclusion"):
            wanted = request.query_params.get(name)
            field_name = "head_branch" if name == "branch" else name
            if wanted:
                runs = [r for r in runs if r[field_name] == wanted]
        return gh._paginate(request, [public(r) for r in reversed(runs)], key="workflow_runs")
    if len(rest) >= 2 and rest[0] == "runs":
        run = owned(state.workflow_runs, rest[1], repo)
        if len(rest) == 2:
            return gh._json(public(run))
        if rest[2:] == ["jobs"]:
            latest = github_actions.jobs_of(gh, run["id"], run["run_attempt"])
            jobs = [public(j) for j in latest]
            return gh._paginate(request, jobs, key="jobs")
        raise NotFound
    if len(rest) in (2, 3) and rest[0] == "jobs":
        job = owned(state.jobs, rest[1], repo)
        if len(rest) == 2:
            return gh._json(public(job))
        if rest[2] == "logs":
            key = secrets.token_urlsafe(12)
            gh._log_urls[key] = (job["_log"], time.time() + 60)
            return RedirectResponse(f"{gh.url}/_logs/{key}", 302, headers=gh._headers())
    raise NotFound


def deployments(
    gh: GitHubStandIn,
    request: Request,
    repo: str,
    rest: list[str],
    body: dict[str, Any],
    token: Token | None,
) -> Response:
    method = request.method
    denied = gh._allowed(token, repo, "deployments", "read" if method == "GET" else "write")
    if denied:
        return denied
    if not rest:
        return (
            _create_deployment(gh, repo, body, token)
            if method == "POST"
            else _list_deployments(gh, request, repo)
        )
    deployment = owned(gh.state.deployments, rest[0], repo)
    if len(rest) == 1 and method == "GET":
        return gh._json(public(deployment))
    if rest[1:] == ["statuses"] and method == "GET":
        return gh._paginate(request, gh.state.deployment_statuses[deployment["id"]])
    if rest[1:] == ["statuses"] and method == "POST":
        if body.get("state") not in DEPLOYMENT_STATES:
            return gh._invalid("DeploymentStatus", "state", "invalid")
        return gh._json(gh._new_deployment_status(deployment, gh._bot(token), body), 201)
    if len(rest) == 3 and rest[1] == "statuses" and method == "GET":
        wanted = path_id(rest[2])
        for status in gh.state.deployment_statuses[deployment["id"]]:
            if status["id"] == wanted:
                return gh._json(status)
    raise NotFound


def _create_deployment(
    gh: GitHubStandIn, repo: str, body: Mapping[str, Any], token: Token | None
) -> Response:
    ref = str(body.get("ref") or "")
    if not ref:
        return gh._invalid("Deployment", "ref", "missing_field")
    sha = gh.resolve(repo, ref)
    if sha is None:
        return gh._error(422, f"No ref found for: {ref}")
    environment = str(body.get("environment") or "production")
    deployment = gh._new_deployment(repo, ref, sha, environment, gh._bot(token), body)
    return gh._json(deployment, 201)


def _list_deployments(gh: GitHubStandIn, request: Request, repo: str) -> Response:
    found = [d for d in gh.state.deployments.values() if d["_repo"] == repo]
    for name in ("sha", "ref", "environment", "task"):
        wanted = request.query_params.get(name)
        if wanted:
            found = [d for d in found if d[name] == wanted]
    return gh._paginate(request, [public(d) for d in reversed(found)])
