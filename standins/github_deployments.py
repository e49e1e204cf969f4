"""The GitHub stand-in's deployment routes: deployments of a ref and their statuses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import Response

from standins.github_common import Call, NotFound, owned, public

if TYPE_CHECKING:
    from standins.github import GitHubStandIn


def list_deployments(gh: GitHubStandIn, call: Call) -> Response:
    found = [d for d in gh.state.deployments.values() if d["_repo"] == call.repo]
    for name in ("sha", "ref", "environment", "task"):
        wanted = call.query.get(name)
        if wanted:
            found = [d for d in found if d[name] == wanted]
    return gh._paginate(call.request, [public(d) for d in reversed(found)])


def create_deployment(gh: GitHubStandIn, call: Call) -> Response:
    ref = str(call.body["ref"])
    sha = gh.resolve(call.repo, ref)
    if sha is None:
        return gh._error(422, f"No ref found for: {ref}")
    environment = str(call.body.get("environment") or "production")
    creator = gh._bot(call.token)
    deployment = gh._new_deployment(call.repo, ref, sha, environment, creator, call.body)
    return gh._json(deployment, 201)


def get_deployment(gh: GitHubStandIn, call: Call) -> Response:
    return gh._json(public(owned(gh.state.deployments, call.params["deployment_id"], call.repo)))


def list_statuses(gh: GitHubStandIn, call: Call) -> Response:
    deployment = owned(gh.state.deployments, call.params["deployment_id"], call.repo)
    return gh._paginate(call.request, gh.state.deployment_statuses[deployment["id"]])


def create_status(gh: GitHubStandIn, call: Call) -> Response:
    deployment = owned(gh.state.deployments, call.params["deployment_id"], call.repo)
    status = gh._new_deployment_status(deployment, gh._bot(call.token), call.body)
    return gh._json(status, 201)


def get_status(gh: GitHubStandIn, call: Call) -> Response:
    deployment = owned(gh.state.deployments, call.params["deployment_id"], call.repo)
    wanted = call.number("status_id")
    for status in gh.state.deployment_statuses[deployment["id"]]:
        if status["id"] == wanted:
            return gh._json(status)
    raise NotFound
