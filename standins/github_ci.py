"""The GitHub stand-in's check and status routes: check runs (the App's own, in its suite on the
commit) and check suites, and a commit's statuses, its checks and its combined status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from standins import github_shapes_ci as shapes
from standins.github_common import Call, now_iso, owned, public

if TYPE_CHECKING:
    from standins.github import GitHubStandIn

ACTION_LIMITS = {"label": 20, "identifier": 20, "description": 40}


def create_check_run(gh: GitHubStandIn, call: Call) -> Response:
    body, repo = call.body, call.repo
    if not _actions_fit(body.get("actions")):
        return gh._invalid("CheckRun", "actions", "invalid")
    sha = gh.resolve(repo, str(body["head_sha"]))
    if sha is None:
        return gh._invalid("CheckRun", "head_sha", "invalid")
    slug = call.token.installation.app.slug if call.token else "ghost"
    run = gh._new_check_run(repo, gh._app_suite(repo, sha, slug), {**body, "head_sha": sha})
    return gh._json(public(run), 201)


def get_check_run(gh: GitHubStandIn, call: Call) -> Response:
    return gh._json(public(owned(gh.state.check_runs, call.params["check_run_id"], call.repo)))


def update_check_run(gh: GitHubStandIn, call: Call) -> Response:
    run = owned(gh.state.check_runs, call.params["check_run_id"], call.repo)
    if not _actions_fit(call.body.get("actions")):
        return gh._invalid("CheckRun", "actions", "invalid")
    _update(run, call.body)
    return gh._json(public(run))


def _actions_fit(actions: Any) -> bool:
    """GitHub: at most three buttons, label and identifier up to 20 characters, description
    up to 40."""
    if actions is None:
        return True
    return len(actions) <= 3 and all(
        set(a) == set(ACTION_LIMITS)
        and all(0 < len(str(a[k])) <= n for k, n in ACTION_LIMITS.items())
        for a in actions
    )


def _update(run: dict[str, Any], body: Mapping[str, Any]) -> None:
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
        kept = {k: run["output"][k] for k in ("title", "summary", "text")}
        run["output"] = shapes.check_output(run["url"], {**kept, **body["output"]})


def get_suite(gh: GitHubStandIn, call: Call) -> Response:
    suite = owned(gh.state.check_suites, call.params["check_suite_id"], call.repo)
    return gh._json(gh._suite_out(suite))


def suite_runs(gh: GitHubStandIn, call: Call) -> Response:
    suite = owned(gh.state.check_suites, call.params["check_suite_id"], call.repo)
    return _listed_runs(gh, call, gh._suite_runs(suite["id"]))


def _commit(gh: GitHubStandIn, call: Call) -> str | Response:
    ref = call.params["ref"]
    return gh.resolve(call.repo, ref) or gh._error(422, f"No commit found for SHA: {ref}")


def ref_runs(gh: GitHubStandIn, call: Call) -> Response:
    sha = _commit(gh, call)
    if not isinstance(sha, str):
        return sha
    runs = gh.state.check_runs.values()
    return _listed_runs(
        gh, call, [r for r in runs if r["_repo"] == call.repo and r["head_sha"] == sha]
    )


def _listed_runs(gh: GitHubStandIn, call: Call, runs: list[dict[str, Any]]) -> Response:
    query = call.query
    if query.get("check_name"):
        runs = [r for r in runs if r["name"] == query["check_name"]]
    if query.get("status"):
        runs = [r for r in runs if r["status"] == query["status"]]
    if query.get("app_id"):
        runs = [r for r in runs if str(r["app"]["id"]) == query["app_id"]]
    return gh._paginate(call.request, [public(r) for r in runs], key="check_runs")


def ref_suites(gh: GitHubStandIn, call: Call) -> Response:
    sha = _commit(gh, call)
    if not isinstance(sha, str):
        return sha
    suites = [
        gh._suite_out(s)
        for s in gh.state.check_suites.values()
        if s["_repo"] == call.repo and s["head_sha"] == sha
    ]
    app_id = call.query.get("app_id")
    if app_id:
        suites = [s for s in suites if str(s["app"]["id"]) == app_id]
    name = call.query.get("check_name")
    if name:
        suites = [s for s in suites if any(r["name"] == name for r in gh._suite_runs(s["id"]))]
    return gh._paginate(call.request, suites, key="check_suites")


def create_status(gh: GitHubStandIn, call: Call) -> Response:
    repo, body = call.repo, call.body
    sha = gh.resolve(repo, call.params["sha"])
    if sha is None:
        return gh._error(422, f"No commit found for SHA: {call.params['sha']}")
    status_id = gh.next_id()
    status = shapes.status(
        url=f"{gh.url}/repos/{repo}/statuses/{sha}",
        status_id=status_id,
        body=body,
        creator=gh._user(gh._bot(call.token)),
        when=now_iso(),
    )
    gh.state.statuses.append({**status, "_repo": repo, "_sha": sha})
    return gh._json(status, 201)


def _statuses(gh: GitHubStandIn, repo: str, sha: str) -> list[dict[str, Any]]:
    mine = [public(s) for s in gh.state.statuses if s["_repo"] == repo and s["_sha"] == sha]
    return list(reversed(mine))  # newest first


def ref_statuses(gh: GitHubStandIn, call: Call) -> Response:
    sha = _commit(gh, call)
    return (
        sha
        if not isinstance(sha, str)
        else gh._paginate(call.request, _statuses(gh, call.repo, sha))
    )


def combined_status(gh: GitHubStandIn, call: Call) -> Response:
    sha = _commit(gh, call)
    if not isinstance(sha, str):
        return sha
    latest: dict[str, dict[str, Any]] = {}
    for status in _statuses(gh, call.repo, sha):
        latest.setdefault(str(status["context"]), status)
    states = [s["state"] for s in latest.values()]
    failed = any(s in ("failure", "error") for s in states)
    overall = "failure" if failed else "pending" if not states or "pending" in states else "success"
    api = f"{gh.url}/repos/{call.repo}/commits/{sha}"
    return gh._json(
        {
            "state": overall,
            "sha": sha,
            "statuses": list(latest.values()),
            "total_count": len(latest),
            "repository": gh._repo_json(gh.state.repos[call.repo]),
            "commit_url": api,
            "url": f"{api}/status",
        }
    )
