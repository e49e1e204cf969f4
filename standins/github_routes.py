"""The GitHub stand-in's route table: each operation it serves, by GitHub's method and path
template (as GitHub's OpenAPI description spells them), with its handler, the credential it
takes and the installation permission it needs. A method and path not here answers 404.

Some of GitHub's rules are in its description's prose, not its schemas; `RULES` holds those
the stand-in enforces, worded as GitHub words its 422s."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from standins import (
    github_actions,
    github_apps,
    github_ci,
    github_deployments,
    github_git,
    github_hooks,
    github_issues,
    github_oauth,
    github_pulls,
    github_repos,
    github_reviews,
)
from standins.github_common import Call

if TYPE_CHECKING:
    from standins.github import GitHubStandIn

Handler = Callable[["GitHubStandIn", Call], Response | Awaitable[Response]]
REPO = "/repos/{owner}/{repo}"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    permission: str = ""  # "checks:write": what an installation token needs beyond metadata
    auth: str = "token"  # "token": an installation token; "app": the App's JWT; "user"


def _repo_routes() -> list[Route]:
    return [
        Route("GET", REPO, github_repos.get_repo),
        Route("GET", REPO + "/branches/{branch}", github_repos.get_branch),
        Route("GET", REPO + "/contents/{path}", github_repos.get_content, "contents:read"),
        Route("GET", REPO + "/git/ref/{ref}", github_repos.get_ref),
        Route(
            "GET",
            REPO + "/collaborators/{username}/permission",
            github_repos.collaborator_permission,
        ),
    ]


def _git_routes() -> list[Route]:
    git, read, write = REPO + "/git", "contents:read", "contents:write"
    return [
        Route("POST", git + "/blobs", github_git.create_blob, write),
        Route("GET", git + "/blobs/{file_sha}", github_git.get_blob, read),
        Route("POST", git + "/trees", github_git.create_tree, write),
        Route("GET", git + "/trees/{tree_sha}", github_git.get_tree, read),
        Route("POST", git + "/commits", github_git.create_commit, write),
        Route("GET", git + "/commits/{commit_sha}", github_git.get_commit, read),
        Route("POST", git + "/refs", github_git.create_ref, write),
        Route("PATCH", git + "/refs/{ref}", github_git.update_ref, write),
        Route("GET", REPO + "/commits/{ref}", github_git.get_rest_commit, read),
    ]


def _issue_routes() -> list[Route]:
    issue, comment = REPO + "/issues/{issue_number}", REPO + "/issues/comments/{comment_id}"
    return [
        Route("GET", issue, github_issues.get_issue),
        Route("GET", issue + "/comments", github_issues.list_comments),
        Route("POST", issue + "/comments", github_issues.create_comment),
        Route("GET", comment, github_issues.get_comment),
        Route("PATCH", comment, github_issues.update_comment),
        Route("POST", comment + "/reactions", github_issues.react_to_comment),
        Route("POST", issue + "/reactions", github_issues.react_to_issue),
        Route("GET", issue + "/labels", github_issues.list_labels),
        Route("POST", issue + "/labels", github_issues.add_labels),
        Route("DELETE", issue + "/labels/{name}", github_issues.remove_label),
    ]


def _pull_routes() -> list[Route]:
    pull, read, write = REPO + "/pulls/{pull_number}", "pull_requests:read", "pull_requests:write"
    review = pull + "/reviews/{review_id}"
    return [
        Route("GET", REPO + "/pulls", github_pulls.list_pulls, read),
        Route("POST", REPO + "/pulls", github_pulls.create_pull, write),
        Route("GET", pull, github_pulls.get_pull, read),
        Route("PATCH", pull, github_pulls.update_pull, write),
        Route("GET", pull + "/files", github_pulls.list_files, read),
        Route("GET", REPO + "/commits/{commit_sha}/pulls", github_pulls.commit_pulls, read),
        Route("GET", pull + "/reviews", github_reviews.list_reviews, read),
        Route("POST", pull + "/reviews", github_reviews.create_review, write),
        Route("GET", review, github_reviews.get_review, read),
        Route("GET", review + "/comments", github_reviews.review_comments, read),
        Route("GET", pull + "/comments", github_reviews.list_comments, read),
        Route("GET", REPO + "/pulls/comments/{comment_id}", github_reviews.get_comment, read),
        Route("POST", pull + "/comments/{comment_id}/replies", github_reviews.reply, write),
    ]


def _check_routes() -> list[Route]:
    run, suite = REPO + "/check-runs/{check_run_id}", REPO + "/check-suites/{check_suite_id}"
    commit, read = REPO + "/commits/{ref}", "checks:read"
    return [
        Route("POST", REPO + "/check-runs", github_ci.create_check_run, "checks:write"),
        Route("GET", run, github_ci.get_check_run, read),
        Route("PATCH", run, github_ci.update_check_run, "checks:write"),
        Route("GET", suite, github_ci.get_suite, read),
        Route("GET", suite + "/check-runs", github_ci.suite_runs, read),
        Route("GET", commit + "/check-runs", github_ci.ref_runs, read),
        Route("GET", commit + "/check-suites", github_ci.ref_suites, read),
        Route("POST", REPO + "/statuses/{sha}", github_ci.create_status, "statuses:write"),
        Route("GET", commit + "/status", github_ci.combined_status, "statuses:read"),
        Route("GET", commit + "/statuses", github_ci.ref_statuses, "statuses:read"),
    ]


def _actions_routes() -> list[Route]:
    runs, jobs, read = REPO + "/actions/runs", REPO + "/actions/jobs/{job_id}", "actions:read"
    return [
        Route("GET", runs, github_actions.list_runs, read),
        Route("GET", runs + "/{run_id}", github_actions.get_run, read),
        Route("GET", runs + "/{run_id}/jobs", github_actions.run_jobs, read),
        Route(
            "GET",
            runs + "/{run_id}/attempts/{attempt_number}/jobs",
            github_actions.attempt_jobs,
            read,
        ),
        Route(
            "POST",
            runs + "/{run_id}/rerun-failed-jobs",
            github_actions.rerun_failed_jobs,
            "actions:write",
        ),
        Route(
            "GET",
            REPO + "/actions/workflows/{workflow_id}/runs",
            github_actions.workflow_runs,
            read,
        ),
        Route("GET", jobs, github_actions.get_job, read),
        Route("GET", jobs + "/logs", github_actions.job_logs, read),
    ]


def _deployment_routes() -> list[Route]:
    one, read, write = (
        REPO + "/deployments/{deployment_id}",
        "deployments:read",
        "deployments:write",
    )
    return [
        Route("GET", REPO + "/deployments", github_deployments.list_deployments, read),
        Route("POST", REPO + "/deployments", github_deployments.create_deployment, write),
        Route("GET", one, github_deployments.get_deployment, read),
        Route("GET", one + "/statuses", github_deployments.list_statuses, read),
        Route("POST", one + "/statuses", github_deployments.create_status, write),
        Route("GET", one + "/statuses/{status_id}", github_deployments.get_status, read),
    ]


def _app_routes() -> list[Route]:
    return [
        Route("GET", "/app", github_apps.get_app, auth="app"),
        Route(
            "POST",
            "/app/installations/{installation_id}/access_tokens",
            github_apps.create_token,
            auth="app",
        ),
        Route("GET", REPO + "/installation", github_apps.repo_installation, auth="app"),
        Route("GET", "/app/hook/deliveries", github_hooks.list_deliveries, auth="app"),
        Route(
            "POST",
            "/app/hook/deliveries/{delivery_id}/attempts",
            github_hooks.redeliver,
            auth="app",
        ),
        # A user's token (the OAuth web flow's); each handler checks it.
        Route("GET", "/user", github_oauth.get_user, auth="user"),
        Route("GET", "/user/installations", github_oauth.user_installations, auth="user"),
        Route(
            "GET",
            "/user/installations/{installation_id}/repositories",
            github_oauth.installation_repositories,
            auth="user",
        ),
    ]


# github.com's pages, not the REST API: GitHub's REST description does not hold them.
WEB: dict[tuple[str, str], Handler] = {
    ("GET", "/login/oauth/authorize"): github_oauth.authorize,
    ("POST", "/login/oauth/access_token"): github_oauth.exchange,
}


def routes() -> dict[tuple[str, str], Route]:
    """Every route, by (method, GitHub's path template)."""
    table = [
        *_app_routes(),
        *_repo_routes(),
        *_git_routes(),
        *_issue_routes(),
        *_pull_routes(),
        *_check_routes(),
        *_actions_routes(),
        *_deployment_routes(),
    ]
    return {(route.method, route.path): route for route in table}


def _conclusion_rules(body: Mapping[str, Any]) -> str | None:
    """Check runs: "**Required if you provide `completed_at` or a `status` of `completed`**",
    and "You cannot change a check run conclusion to `stale`, only GitHub can set this"."""
    completing = body.get("status") == "completed" or "completed_at" in body
    if completing and "conclusion" not in body:
        return '"conclusion" wasn\'t supplied.'
    if body.get("conclusion") == "stale":
        return "For 'properties/conclusion', \"stale\" can only be set by GitHub."
    return None


def _title_rule(body: Mapping[str, Any]) -> str | None:
    """Pull requests: a title is "Required unless `issue` is specified"."""
    return None if "title" in body or "issue" in body else '"title" wasn\'t supplied.'


RULES: dict[tuple[str, str], Callable[[Mapping[str, Any]], str | None]] = {
    ("POST", REPO + "/check-runs"): _conclusion_rules,
    ("PATCH", REPO + "/check-runs/{check_run_id}"): _conclusion_rules,
    ("POST", REPO + "/pulls"): _title_rule,
}
