"""A world for probing the GitHub stand-in against GitHub's description: a stand-in holding one
of everything (an issue with comments and labels, open, merged and fork pull requests with a
review, other Apps' check suites, an Actions run with a failed job, a deployment), and the
credentials to ask it with. The requests: tests/standin_requests.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

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


@dataclass(frozen=True)
class Probe:
    method: str
    path: str  # GitHub's template
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    auth: str = "token"  # "token" (installation), "jwt" (the App), "user" (alice's, by OAuth)
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
        self.user_token = _user_token(gh, self.app, self.client)
        gh.emit("ping", None, to=f"{gh.url}/nowhere", secret=self.app.webhook_secret)
        self.delivery = gh.hooks.sent[-1].id

    def headers(self, auth: str) -> dict[str, str]:
        if auth == "jwt":
            return {"Authorization": f"Bearer {self.jwt}"}
        if auth == "token":
            return {"Authorization": f"token {self.token}"}
        if auth == "user":
            return {"Authorization": f"token {self.user_token}"}
        return {}


def _user_token(gh: GitHubStandIn, app: Any, client: httpx.Client) -> str:
    """alice's token through the OAuth web flow, as the dashboard signs her in."""
    client_id, secret = gh.oauth.client_for(app)
    gh.oauth.signed_in = "alice"
    query = {"client_id": client_id, "redirect_uri": "http://127.0.0.1/back", "state": "s"}
    sent_back = client.get(f"{gh.url}/login/oauth/authorize", params=query)
    code = parse_qs(urlsplit(sent_back.headers["location"]).query)["code"][0]
    exchange = {"client_id": client_id, "client_secret": secret, "code": code}
    answer = client.post(f"{gh.url}/login/oauth/access_token", json=exchange)
    return str(answer.json()["access_token"])


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
