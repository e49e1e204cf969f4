"""A stand-in for GitHub on a real socket: a REST subset with GitHub's shapes, status codes and
headers, App JWT and installation-token auth with repository and permission scoping, git smart
HTTP through the real `git http-backend`, failure injection, and a webhook emitter built from
the recorded payloads. Tests set state up, run the app against `SHIPMATE_GITHUB_API_URL`, and
assert on what was recorded.

    with GitHubStandIn(tmp_path) as gh:
        app = gh.create_app()
        gh.create_repo("octo/widgets", {"README.md": "hi"})
        installation = gh.install(app, "octo", ["octo/widgets"], {"contents": "write"})
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import math
import os
import re
import secrets
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from standins import github_ci as ci
from standins import github_conversation as talk
from standins import github_git, github_hooks, github_oauth
from standins import github_shapes as shapes
from standins import webhook_payloads as payloads
from standins.github_common import (
    DEPLOYMENT_STATES,
    DOCS,
    LEVELS,
    App,
    Installation,
    NotFound,
    Repo,
    Token,
    git,
    now_iso,
    public,
    query_int,
)
from standins.server import ServerThread

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "github-webhooks"
ACTIONS_APP_ID = 15368  # GitHub Actions' own App id
FAULT_KINDS = (
    "rate_limit",
    "rate_limit_429",
    "secondary_limit",
    "secondary_limit_429",
    "server_error",
    "expired_token",
    "slow",
)
PRE_RECEIVE = """#!/bin/sh
# Installed by the GitHub stand-in: refuse workflow changes without the workflows permission.
[ "$STANDIN_WORKFLOWS" = "write" ] && exit 0
zero=0000000000000000000000000000000000000000
while read old new ref; do
  [ "$new" = "$zero" ] && continue
  if [ "$old" = "$zero" ]; then range="$new --not --all"; else range="$old..$new"; fi
  if git log --format= --name-only $range | grep -q '^\\.github/workflows/'; then
    file=$(git log --format= --name-only $range | grep '^\\.github/workflows/' | head -1)
    echo "refusing to allow a GitHub App to create or update workflow \\`$file\\` without \\`workflows\\` permission"
    exit 1
  fi
done
exit 0
"""


@dataclass
class Fault:
    pattern: re.Pattern[str]
    kind: str
    times: int
    seconds: float = 0.0
    status: int = 502


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class State:
    repos: dict[str, Repo] = field(default_factory=dict)
    issues: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    reactions: list[dict[str, Any]] = field(default_factory=list)
    pulls: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    review_comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    reviews: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    check_suites: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    workflow_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[int, dict[str, Any]] = field(default_factory=dict)
    deployment_statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    collaborators: dict[tuple[str, str], str] = field(default_factory=dict)
    pushes: list[dict[str, Any]] = field(default_factory=list)
    reruns: list[int] = field(default_factory=list)  # workflow runs whose failed jobs re-ran


_IDS = itertools.count(1001)


class GitHubStandIn:
    def __init__(self, root: Path, port: int | None = None, first_id: int | None = None) -> None:
        self.root = root
        self.state = State()
        self.apps: dict[int, App] = {}
        self.installations: dict[int, Installation] = {}
        self.tokens: dict[str, Token] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.errors: list[str] = []
        self._used: dict[str, int] = {}
        self.token_lifetime = 3600.0
        # Ids are unique across stand-ins in one process, as on GitHub (githubkit caches App
        # JWTs per App id, so two stand-ins reusing an id would see each other's tokens).
        # A stand-in in another process passes its own `first_id` for the same reason.
        self._ids = _IDS if first_id is None else itertools.count(first_id)
        self._log_urls: dict[str, tuple[str, float]] = {}
        self.git_database = github_git.GitDatabase()
        self.oauth = github_oauth.OAuthWeb(self)
        self.hooks = github_hooks.HookDeliveries(self)
        self._server = ServerThread(self._app(), port=port)

    # Set-up -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> GitHubStandIn:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def next_id(self) -> int:
        return next(self._ids)

    def create_app(self, slug: str = "shipmate") -> App:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        app = App(self.next_id(), slug, pem, key.public_key(), secrets.token_hex(16))
        self.apps[app.id] = app
        return app

    def create_repo(
        self, full_name: str, files: Mapping[str, str], default_branch: str = "main"
    ) -> Repo:
        path = self.root / "git" / f"{full_name}.git"
        path.parent.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "--bare", "-b", default_branch, str(path))
        git("config", "http.receivepack", "true", cwd=path)
        hook = path / "hooks" / "pre-receive"
        hook.write_text(PRE_RECEIVE)
        hook.chmod(0o755)
        work = self.root / "seed" / full_name
        git("init", "-q", "-b", default_branch, str(work))
        _commit_files(work, files, "Initial commit")
        git("push", "-q", str(path), f"HEAD:refs/heads/{default_branch}", cwd=work)
        repo = Repo(full_name, self.next_id(), path, default_branch)
        self.state.repos[full_name] = repo
        return repo

    def install(
        self, app: App, account: str, repositories: Sequence[str], permissions: Mapping[str, str]
    ) -> Installation:
        installation = Installation(
            self.next_id(), app, account, list(repositories), dict(permissions)
        )
        self.installations[installation.id] = installation
        return installation

    def add_collaborator(self, repo: str, login: str, permission: str) -> None:
        self.state.collaborators[(repo, login)] = permission

    def create_issue(
        self,
        repo: str,
        title: str,
        body: str = "",
        user: str = "octocat",
        labels: Sequence[str] = (),
    ) -> dict[str, Any]:
        number = self._next_number(repo)
        issue = {
            "id": self.next_id(),
            "number": number,
            "title": title,
            "body": body,
            "state": "open",
            "user": self._user(user),
            "labels": [{"name": n} for n in labels],
            "html_url": f"{self.url}/{repo}/issues/{number}",
        }
        self.state.issues[(repo, number)] = issue
        return issue

    def create_comment(
        self, repo: str, number: int, body: str, user: str = "octocat"
    ) -> dict[str, Any]:
        """A comment a person wrote (what a webhook's `comment` then refers to)."""
        comment_id = self.next_id()
        comment: dict[str, Any] = {
            "id": comment_id,
            "repo": repo,
            "issue": number,
            "body": body,
            "user": self._user(user),
            "created_at": now_iso(),
            "updated_at": now_iso(),
            "html_url": f"{self.url}/{repo}/issues/{number}#comment",
        }
        self.state.comments[comment_id] = comment
        return comment

    def comments_on(self, repo: str, number: int) -> list[dict[str, Any]]:
        return [
            c for c in self.state.comments.values() if c["repo"] == repo and c["issue"] == number
        ]

    def commit(
        self,
        repo: str,
        branch: str,
        files: Mapping[str, str],
        message: str = "change",
        start: str | None = None,
    ) -> str:
        """Commit `files` on `branch` (made from `start`, default: the default branch) as a
        person pushing would; returns the new head."""
        info = self.state.repos[repo]
        work = self.root / "work" / f"{repo.replace('/', '-')}-{self.next_id()}"
        git("clone", "-q", str(info.path), str(work))
        source = branch if self.branch_sha(repo, branch) else (start or info.default_branch)
        git("checkout", "-q", "-B", branch, f"origin/{source}", cwd=work)
        _commit_files(work, files, message)
        git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
        return git("rev-parse", "HEAD", cwd=work).strip()

    def create_pull(
        self, repo: str, head: str, title: str, user: str, base: str | None = None
    ) -> dict[str, Any]:
        info = self.state.repos[repo]
        return self._new_pull(
            repo,
            head_ref=head,
            head_sha=self.branch_sha(repo, head),
            head_repo=info,
            base_ref=base or info.default_branch,
            title=title,
            body="",
            author=user,
            draft=False,
        )

    def _new_pull(
        self,
        repo: str,
        *,
        head_ref: str,
        head_sha: str | None,
        head_repo: Repo,
        base_ref: str,
        title: str,
        body: str | None,
        author: str,
        draft: bool,
    ) -> dict[str, Any]:
        info = self.state.repos[repo]
        number = self._next_number(repo)
        pull = shapes.pull_request(
            self.url,
            repo,
            pull_id=self.next_id(),
            number=number,
            title=title,
            body=body,
            author=self._user(author),
            head=shapes.pull_ref(
                head_ref,
                head_sha,
                self._repo_json(head_repo),
                self._user(head_repo.full_name.split("/")[0]),
            ),
            base_ref=shapes.pull_ref(
                base_ref,
                self.branch_sha(repo, base_ref),
                self._repo_json(info),
                self._user(repo.split("/")[0]),
            ),
            draft=draft,
            created_at=now_iso(),
        )
        self.state.pulls[(repo, number)] = pull
        return pull

    def _next_number(self, repo: str) -> int:
        return (
            len([k for k in self.state.issues if k[0] == repo])
            + len([k for k in self.state.pulls if k[0] == repo])
            + 1
        )

    def create_fork_pull(
        self, repo: str, fork: str, branch: str, files: Mapping[str, str], title: str, user: str
    ) -> dict[str, Any]:
        """A pull request from `fork` (a copy of `repo`); its head is also kept in the base
        repository as refs/pull/N/head, as GitHub does."""
        base = self.state.repos[repo]
        fork_path = self.root / "git" / f"{fork}.git"
        fork_path.parent.mkdir(parents=True, exist_ok=True)
        git("clone", "-q", "--bare", str(base.path), str(fork_path))
        self.state.repos[fork] = Repo(fork, self.next_id(), fork_path, base.default_branch)
        head_sha = self.commit(fork, branch, files, title)
        pull = self._new_pull(
            repo,
            head_ref=branch,
            head_sha=head_sha,
            head_repo=self.state.repos[fork],
            base_ref=base.default_branch,
            title=title,
            body="",
            author=user,
            draft=False,
        )
        git(
            "fetch",
            "-q",
            str(fork_path),
            f"refs/heads/{branch}:refs/pull/{pull['number']}/head",
            cwd=base.path,
        )
        return pull

    def add_review(
        self,
        repo: str,
        number: int,
        user: str,
        state: str,
        body: str,
        comments: Sequence[tuple[str, int, str]],
    ) -> dict[str, Any]:
        """A submitted review by a person, with (path, line, text) comments."""
        return self._new_review(
            repo,
            number,
            user,
            state,
            body,
            [{"path": p, "line": n, "body": t} for p, n, t in comments],
        )

    def _new_review(
        self,
        repo: str,
        number: int,
        user: str,
        state: str,
        body: str,
        comments: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        pull = self.state.pulls[(repo, number)]
        review_id = self.next_id()
        html = f"{pull['html_url']}#pullrequestreview-{review_id}"
        review = {
            "id": review_id,
            "node_id": shapes.node_id("PullRequestReview", review_id),
            "user": self._user(user),
            "body": body,
            "state": state,
            "html_url": html,
            "pull_request_url": pull["url"],
            "commit_id": pull["head"]["sha"],
            "submitted_at": None if state == "PENDING" else now_iso(),
            "author_association": "NONE",
            "_links": {"html": {"href": html}, "pull_request": {"href": pull["url"]}},
        }
        self.state.reviews.setdefault((repo, number), []).append(review)
        for comment in comments:
            self._new_review_comment(repo, pull, review_id, user, comment)
        return review

    def _new_review_comment(
        self,
        repo: str,
        pull: Mapping[str, Any],
        review_id: int,
        user: str,
        fields: Mapping[str, Any],
        in_reply_to: int | None = None,
    ) -> dict[str, Any]:
        comment_id = self.next_id()
        line = fields.get("line", fields.get("position"))
        html = f"{pull['html_url']}#discussion_r{comment_id}"
        url = f"{self.url}/repos/{repo}/pulls/comments/{comment_id}"
        comment: dict[str, Any] = {
            "url": url,
            "id": comment_id,
            "node_id": shapes.node_id("PullRequestReviewComment", comment_id),
            "pull_request_review_id": review_id,
            "diff_hunk": "@@ -1 +1 @@",
            "path": fields.get("path", ""),
            "position": line,
            "original_position": line,
            "line": line,
            "original_line": line,
            "side": fields.get("side", "RIGHT"),
            "commit_id": pull["head"]["sha"],
            "original_commit_id": pull["head"]["sha"],
            "user": self._user(user),
            "body": fields.get("body", ""),
            "created_at": now_iso(),
            "updated_at": now_iso(),
            "html_url": html,
            "pull_request_url": pull["url"],
            "author_association": "NONE",
            "_links": {
                "self": {"href": url},
                "html": {"href": html},
                "pull_request": {"href": pull["url"]},
            },
            "_repo": repo,
            "_pull": pull["number"],
        }
        if in_reply_to is not None:
            comment["in_reply_to_id"] = in_reply_to
        self.state.review_comments[comment_id] = comment
        return comment

    def branch_sha(self, repo: str, branch: str) -> str | None:
        try:
            return git("rev-parse", f"refs/heads/{branch}", cwd=self.state.repos[repo].path).strip()
        except subprocess.CalledProcessError:
            return None

    def resolve(self, repo: str, ref: str) -> str | None:
        """The commit a branch, tag or (abbreviated) sha names, or None."""
        if not ref or ref.startswith("-"):
            return None
        try:
            return git(
                "rev-parse",
                "--verify",
                "--quiet",
                f"{ref}^{{commit}}",
                cwd=self.state.repos[repo].path,
            ).strip()
        except subprocess.CalledProcessError:
            return None

    def merge_pull(self, repo: str, number: int) -> str:
        """Merge a pull request as GitHub's merge button does: a merge commit on the base branch
        of the bare repository; the pull request is then merged and closed. Returns the commit."""
        info, pull = self.state.repos[repo], self.state.pulls[(repo, number)]
        if pull["state"] != "open":
            raise ValueError(f"pull request #{number} is {pull['state']}, not open")
        base_ref, head_sha = pull["base"]["ref"], pull["head"]["sha"]
        base_sha = self.branch_sha(repo, base_ref)
        if base_sha is None or not head_sha:
            raise ValueError(f"pull request #{number} has no base branch or head commit")
        try:
            tree = git("merge-tree", "--write-tree", base_sha, head_sha, cwd=info.path).split()[0]
        except subprocess.CalledProcessError:
            raise ValueError(
                f"pull request #{number} does not merge cleanly into {base_ref}"
            ) from None
        head_owner = pull["head"]["repo"]["owner"]["login"]
        message = f"Merge pull request #{number} from {head_owner}/{pull['head']['ref']}\n\n{pull['title']}"
        identity = {
            "GIT_AUTHOR_NAME": "octocat",
            "GIT_AUTHOR_EMAIL": "o@example.com",
            "GIT_COMMITTER_NAME": "GitHub",
            "GIT_COMMITTER_EMAIL": "noreply@github.com",
        }
        merged = git(
            "commit-tree",
            tree,
            "-p",
            base_sha,
            "-p",
            head_sha,
            "-m",
            message,
            cwd=info.path,
            env=identity,
        ).strip()
        git("update-ref", f"refs/heads/{base_ref}", merged, base_sha, cwd=info.path)
        now = now_iso()
        pull.update(
            state="closed",
            merged=True,
            merged_at=now,
            closed_at=now,
            updated_at=now,
            merge_commit_sha=merged,
            merged_by=self._user("octocat"),
            mergeable=None,
            mergeable_state="unknown",
        )
        return merged

    def add_job_log(self, repo: str, text: str, name: str = "test") -> int:
        """A failed Actions job with this log, outside any workflow run."""
        sha = self.branch_sha(repo, self.state.repos[repo].default_branch) or ""
        return self._new_job(
            repo, 0, "CI", {"name": name, "conclusion": "failure", "log": text}, sha, None
        )

    def _new_job(
        self,
        repo: str,
        run_id: int,
        workflow: str,
        spec: Mapping[str, Any],
        head_sha: str,
        head_branch: str | None,
        job_id: int | None = None,
    ) -> int:
        job_id = job_id or self.next_id()
        conclusion = spec.get("conclusion", "failure")
        steps = spec.get("steps") or [
            {"name": "Set up job", "conclusion": "success"},
            {"name": f"Run {spec['name']}", "conclusion": conclusion},
            {"name": "Complete job", "conclusion": "success" if conclusion else None},
        ]
        job = shapes.job(
            job_id=job_id,
            repo=self._repo_json(self.state.repos[repo]),
            run_id=run_id,
            workflow_name=workflow,
            name=spec["name"],
            head_sha=head_sha,
            head_branch=head_branch,
            conclusion=conclusion,
            steps=steps,
            when=now_iso(),
        )
        self.state.jobs[job_id] = {**job, "_repo": repo, "_log": spec.get("log", "")}
        return job_id

    def create_check_suite(
        self,
        repo: str,
        *,
        head_sha: str,
        head_branch: str | None,
        conclusion: str | None = "failure",
        app_slug: str = "github-actions",
        check_runs: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """A completed check suite of another App (GitHub Actions by default) on `head_sha`, with
        its check runs ({"name", "conclusion", "output": {"title", "summary", "text"}})."""
        suite = self._new_suite(repo, head_sha, head_branch, self._app_json(app_slug))
        suite.update(status="completed" if conclusion else "in_progress", conclusion=conclusion)
        suite["_derived"] = False
        for spec in check_runs:
            self._new_check_run(repo, suite, {"head_sha": head_sha, "status": "completed", **spec})
        return self._suite_out(suite)

    def create_workflow_run(
        self,
        repo: str,
        *,
        name: str,
        head_sha: str,
        head_branch: str,
        conclusion: str | None = "failure",
        jobs: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """A finished Actions workflow run with its check suite and jobs ({"name", "conclusion",
        "log"}, optionally "steps": [{"name", "conclusion"}]); each job is also a check run of
        the same id, as on GitHub."""
        suite = self._new_suite(repo, head_sha, head_branch, self._app_json("github-actions"))
        suite.update(status="completed" if conclusion else "in_progress", conclusion=conclusion)
        suite["_derived"] = False
        run_id = self.next_id()
        repo_json = self._repo_json(self.state.repos[repo])
        run = shapes.workflow_run(
            run_id=run_id,
            repo=repo_json,
            actor=self._user("octocat"),
            name=name,
            head_sha=head_sha,
            head_branch=head_branch,
            conclusion=conclusion,
            suite_id=suite["id"],
            head_commit=self._head_commit(repo, head_sha),
            pulls=self._pulls_headed_at(repo, head_sha),
            when=now_iso(),
        )
        self.state.workflow_runs[run_id] = {**run, "_repo": repo}
        for spec in jobs:
            job_id = self._new_job(repo, run_id, name, spec, head_sha, head_branch)
            job = self.state.jobs[job_id]
            self._new_check_run(
                repo,
                suite,
                {
                    "name": spec["name"],
                    "head_sha": head_sha,
                    "status": "completed",
                    "conclusion": job["conclusion"],
                    "details_url": job["html_url"],
                    "output": {"title": f"{spec['name']} {job['conclusion']}", "summary": ""},
                },
                run_id=job_id,
            )
        return public(run)

    def create_deployment(
        self, repo: str, *, ref: str, sha: str, environment: str = "production"
    ) -> dict[str, Any]:
        """A deployment of `sha` (from `ref`) made by a person's deploy tool."""
        return public(self._new_deployment(repo, ref, sha, environment, "octocat", {}))

    def add_deployment_status(
        self,
        repo: str,
        deployment_id: int,
        *,
        state: str,
        description: str = "",
        log_url: str = "",
        target_url: str = "",
        environment_url: str = "",
    ) -> dict[str, Any]:
        deployment = self.state.deployments[deployment_id]
        if deployment["_repo"] != repo:
            raise ValueError(f"deployment {deployment_id} is not in {repo}")
        if state not in DEPLOYMENT_STATES:
            raise ValueError(f"state must be one of {', '.join(DEPLOYMENT_STATES)}, not {state!r}")
        return self._new_deployment_status(
            deployment,
            "deploy-bot",
            {
                "state": state,
                "description": description,
                "log_url": log_url,
                "target_url": target_url,
                "environment_url": environment_url,
            },
        )

    def fail(
        self,
        route: str,
        kind: str,
        times: int = 1,
        seconds: float = 0.0,
        status: int | None = None,
    ) -> None:
        """Inject a failure into requests whose "METHOD /path" matches `route` ({x} = one segment).

        Kinds: "rate_limit" (403, primary limit, resets in `seconds`), "rate_limit_429",
        "secondary_limit" (403 with retry-after: `seconds`), "secondary_limit_429",
        "server_error" (`status`, 502 unless given a 5xx), "expired_token" (401), and "slow"
        (answers normally after `seconds`)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        if status is not None and (kind != "server_error" or not 500 <= status <= 599):
            raise ValueError("status is for server_error faults and must be a 5xx")
        pattern = re.escape(route).replace(r"\{", "{").replace(r"\}", "}")
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", pattern)
        self.faults.append(Fault(re.compile(f"^{pattern}$"), kind, times, seconds, status or 502))

    # Webhooks -------------------------------------------------------------------------------

    def delivery(
        self,
        event: str,
        action: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        *,
        secret: str,
        fixture: str | None = None,
        repo: str | None = None,
        sender: str | None = None,
        pull: int | None = None,
        head_sha: str | None = None,
        installation_id: int | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of a delivery: the recorded payload reshaped by the named fields
        (`repo` sets full_name, name, owner.login and, if the stand-in has it, id), then
        deep-merged with `overrides`; signed with `secret` as GitHub signs (sha256 and sha1)."""
        payload = payloads.recorded(FIXTURES, event, action, fixture)
        known = self.state.repos.get(repo) if repo else None
        payloads.reshape(
            payload,
            repo=repo,
            repo_id=known.id if known else None,
            sender=sender,
            pull=pull,
            head_sha=head_sha,
            installation_id=installation_id,
        )
        payloads.merge(payload, overrides or {})
        body = json.dumps(payload).encode()
        installation = payload.get("installation") or {}
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/standin",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "1",
            "X-GitHub-Hook-Installation-Target-ID": str(installation.get("id", "")),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
            "X-Hub-Signature-256": "sha256="
            + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        }
        return headers, body

    def emit(
        self,
        event: str,
        action: str | None,
        overrides: Mapping[str, Any] | None = None,
        *,
        to: str,
        secret: str,
        fixture: str | None = None,
        repo: str | None = None,
        sender: str | None = None,
        pull: int | None = None,
        head_sha: str | None = None,
        installation_id: int | None = None,
    ) -> httpx.Response:
        headers, body = self.delivery(
            event,
            action,
            overrides,
            secret=secret,
            fixture=fixture,
            repo=repo,
            sender=sender,
            pull=pull,
            head_sha=head_sha,
            installation_id=installation_id,
        )
        started = time.monotonic()
        answer = httpx.post(to, content=body, headers=headers, timeout=30)
        self.hooks.record(to, headers, body, json.loads(body), answer, time.monotonic() - started)
        return answer

    # HTTP ------------------------------------------------------------------------------------

    def _app(self) -> Starlette:
        routes = [
            Route("/_logs/{key}", self._serve_log),
            Route("/{owner}/{repo}.git/{rest:path}", self._git_http, methods=["GET", "POST"]),
            Route("/{path:path}", self._rest, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
        ]
        return Starlette(routes=routes)

    def _user(self, login: str) -> dict[str, Any]:
        return shapes.user(self.url, login)

    def _app_json(self, slug: str) -> dict[str, Any]:
        if slug == "github-actions":
            return shapes.integration(self.url, ACTIONS_APP_ID, slug)
        app = next((a for a in self.apps.values() if a.slug == slug), None)
        return shapes.integration(self.url, app.id if app else shapes.stable_id(slug), slug)

    def _head_commit(self, repo: str, sha: str) -> dict[str, Any]:
        try:
            tree, _, message = git(
                "show", "-s", "--format=%T%x00%B", sha, "--", cwd=self.state.repos[repo].path
            ).partition("\0")
        except subprocess.CalledProcessError:
            tree, message = "", ""
        return shapes.simple_commit(sha, tree, message.strip(), now_iso())

    def _branch_at(self, repo: str, sha: str) -> str | None:
        try:
            out = git(
                "for-each-ref",
                "--format=%(refname:short)",
                f"--points-at={sha}",
                "refs/heads",
                cwd=self.state.repos[repo].path,
            )
        except subprocess.CalledProcessError:
            return None
        return out.split()[0] if out.split() else None

    def _pulls_headed_at(self, repo: str, sha: str) -> list[dict[str, Any]]:
        info = self.state.repos[repo]
        return [
            shapes.pull_minimal(self.url, repo, info.id, p)
            for (r, _), p in self.state.pulls.items()
            if r == repo and p["state"] == "open" and p["head"]["sha"] == sha
        ]

    def _new_suite(
        self, repo: str, head_sha: str, head_branch: str | None, app: dict[str, Any]
    ) -> dict[str, Any]:
        suite = shapes.check_suite(
            suite_id=self.next_id(),
            repo=self._repo_json(self.state.repos[repo]),
            app=app,
            head_sha=head_sha,
            head_branch=head_branch,
            status="queued",
            conclusion=None,
            head_commit=self._head_commit(repo, head_sha),
            pulls=self._pulls_headed_at(repo, head_sha),
            when=now_iso(),
        )
        suite.update(_repo=repo, _derived=True)
        self.state.check_suites[suite["id"]] = suite
        return suite

    def _app_suite(self, repo: str, head_sha: str, slug: str) -> dict[str, Any]:
        """The suite an App's check runs on a commit go into (made on its first check run)."""
        for suite in self.state.check_suites.values():
            if (
                suite["_repo"] == repo
                and suite["head_sha"] == head_sha
                and suite["app"]["slug"] == slug
            ):
                return suite
        return self._new_suite(
            repo, head_sha, self._branch_at(repo, head_sha), self._app_json(slug)
        )

    def _suite_runs(self, suite_id: int) -> list[dict[str, Any]]:
        return [r for r in self.state.check_runs.values() if r["check_suite"]["id"] == suite_id]

    def _suite_out(self, suite: dict[str, Any]) -> dict[str, Any]:
        runs = self._suite_runs(suite["id"])
        out = public(suite)
        out["latest_check_runs_count"] = len(runs)
        if suite["_derived"] and runs:
            done = all(r["status"] == "completed" for r in runs)
            out["status"] = "completed" if done else "in_progress"
            out["conclusion"] = _overall([r["conclusion"] for r in runs]) if done else None
        return out

    def _new_check_run(
        self,
        repo: str,
        suite: dict[str, Any],
        fields: Mapping[str, Any],
        run_id: int | None = None,
    ) -> dict[str, Any]:
        run = shapes.check_run(
            run_id=run_id or self.next_id(),
            repo=self._repo_json(self.state.repos[repo]),
            app=suite["app"],
            suite_id=suite["id"],
            fields=fields,
            pulls=self._pulls_headed_at(repo, str(fields.get("head_sha", ""))),
            when=now_iso(),
        )
        run["_repo"] = repo
        # GitHub keeps a check run's buttons but never shows them in its answers.
        run["_actions"] = list(fields.get("actions") or [])
        self.state.check_runs[run["id"]] = run
        return run

    def _new_deployment(
        self, repo: str, ref: str, sha: str, environment: str, creator: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        deployment = shapes.deployment(
            deployment_id=self.next_id(),
            repo=self._repo_json(self.state.repos[repo]),
            creator=self._user(creator),
            ref=ref,
            sha=sha,
            environment=environment,
            task=str(body.get("task") or "deploy"),
            description=body.get("description"),
            payload=body.get("payload"),
            when=now_iso(),
        )
        self.state.deployments[deployment["id"]] = {**deployment, "_repo": repo}
        self.state.deployment_statuses[deployment["id"]] = []
        return deployment

    def _new_deployment_status(
        self, deployment: Mapping[str, Any], creator: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        status = shapes.deployment_status(
            status_id=self.next_id(),
            deployment=deployment,
            creator=self._user(creator),
            state=str(body["state"]),
            description=str(body.get("description") or ""),
            log_url=str(body.get("log_url") or ""),
            target_url=str(body.get("target_url") or ""),
            environment_url=str(body.get("environment_url") or ""),
            when=now_iso(),
        )
        self.state.deployment_statuses[deployment["id"]].insert(0, status)
        return status

    def _headers(self, remaining: int = 4999, reset: float | None = None) -> dict[str, str]:
        return {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-used": str(5000 - remaining),
            "x-ratelimit-reset": str(int(reset or time.time() + 3600)),
            "x-ratelimit-resource": "core",
            "x-github-request-id": uuid.uuid4().hex[:16].upper(),
        }

    def _json(
        self, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        return JSONResponse(data, status, headers={**self._headers(), **(headers or {})})

    def _error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        return self._json(
            {"message": message, "documentation_url": DOCS, "status": str(status)}, status, headers
        )

    async def _fault(self, key: str) -> Response | None:
        for fault in self.faults:
            if fault.times > 0 and fault.pattern.match(key):
                fault.times -= 1
                if fault.kind == "slow":
                    await asyncio.sleep(fault.seconds or 1.0)
                    return None
                return self._fault_answer(fault)
        return None

    def _fault_answer(self, fault: Fault) -> Response:
        wait = fault.seconds or 1
        if fault.kind.startswith("rate_limit"):
            return JSONResponse(
                {"message": "API rate limit exceeded for installation.", "documentation_url": DOCS},
                429 if fault.kind.endswith("_429") else 403,
                headers=self._headers(0, time.time() + wait),
            )
        if fault.kind.startswith("secondary_limit"):
            return self._error(
                429 if fault.kind.endswith("_429") else 403,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you "
                "try again.",
                {"retry-after": str(math.ceil(wait))},  # whole seconds, as GitHub sends
            )
        if fault.kind == "server_error":
            return self._error(fault.status, "Server Error")
        return self._error(401, "Bad credentials")

    def _token(self, request: Request) -> Token | None:
        auth = request.headers.get("authorization", "")
        value = auth.split(" ", 1)[1] if " " in auth else ""
        if auth.lower().startswith("basic "):
            try:
                value = base64.b64decode(value).decode().split(":", 1)[-1]
            except ValueError:
                return None
        token = self.tokens.get(value)
        if token is None or token.expires_at < time.time():
            return None
        return token

    def _app_from_jwt(self, request: Request) -> App | JSONResponse:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return self._error(401, "A JSON web token could not be decoded")
        raw = auth[7:]
        try:
            unverified = jwt.decode(raw, options={"verify_signature": False})
            app = self.apps[int(unverified["iss"])]
            claims = jwt.decode(
                raw,
                app.public_key,
                algorithms=["RS256"],
                options={
                    "require": ["exp", "iat", "iss"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
            problem = _jwt_problem(float(claims["iat"]), float(claims["exp"]), time.time())
        except (jwt.PyJWTError, KeyError, ValueError, TypeError):
            return self._error(401, "A JSON web token could not be decoded")
        return self._error(401, problem) if problem else app

    def _allowed(
        self, token: Token | None, repo: str, permission: str, level: str
    ) -> Response | None:
        if repo not in self.state.repos:
            return self._error(404, "Not Found")
        if token is None:
            return self._error(401, "Bad credentials")
        if repo not in token.repositories:
            return self._error(404, "Not Found")
        if LEVELS.get(token.permissions.get(permission, "none"), 0) < LEVELS[level]:
            return self._error(403, "Resource not accessible by integration")
        return None

    async def _rest(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._error(400, "Problems parsing JSON")
        record = Recorded(request.method, path, request.url.query, dict(request.headers), body)
        self.requests.append(record)
        key = f"{request.method} {path}"
        response = await self._fault(key)
        if response is None:
            response = await self._answer(request, path, body)
            self._count_request(request, response)
        record.status = response.status_code
        return response

    def _count_request(self, request: Request, response: Response) -> None:
        """Each credential has its own 5,000 an hour, counted down as it is used."""
        bucket = request.headers.get("authorization", "") or f"ip:{request.client}"
        self._used[bucket] = used = self._used.get(bucket, 0) + 1
        response.headers["x-ratelimit-remaining"] = str(max(0, 5000 - used))
        response.headers["x-ratelimit-used"] = str(used)

    async def _answer(self, request: Request, path: str, body: Any) -> Response:
        """The route's answer; what GitHub would refuse is refused, never a bare 500. A request
        the stand-in could not handle answers 422 and is kept in `errors` for the test."""
        if body is not None and not isinstance(body, dict):
            return self._error(422, "Invalid request.\n\nThe request body must be a JSON object.")
        try:
            return await self._route(request, path, body or {})
        except NotFound:
            return self._error(404, "Not Found")
        except (
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            IndexError,
            subprocess.SubprocessError,
        ) as exc:
            self.errors.append(f"{request.method} {path}: {exc!r}")
            return self._error(422, f"Invalid request.\n\n{exc!r}")

    async def _route(self, request: Request, path: str, body: dict[str, Any]) -> Response:
        method = request.method
        parts = path.strip("/").split("/")
        routed = await self.oauth.route(request, path, body)
        routed = routed or await self.hooks.route(request, path)
        if routed is not None:
            return routed
        if path == "/app" and method == "GET":
            app = self._app_from_jwt(request)
            if isinstance(app, JSONResponse):
                return app
            return self._json(
                {
                    "id": app.id,
                    "slug": app.slug,
                    "name": app.slug,
                    "owner": self._user("octo"),
                    "permissions": {},
                    "events": [],
                }
            )
        match = re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)
        if match and method == "POST":
            return self._issue_token(request, int(match.group(1)), body)
        if len(parts) < 3 or parts[0] != "repos":
            raise NotFound
        repo = f"{parts[1]}/{parts[2]}"
        rest = parts[3:]
        token = self._token(request)
        if rest == ["installation"]:
            app = self._app_from_jwt(request)
            if isinstance(app, JSONResponse):
                return app
            found = next((i for i in self.installations.values() if repo in i.repositories), None)
            if found is None:
                raise NotFound
            return self._json(
                {"id": found.id, "account": self._user(found.account), "app_id": found.app.id}
            )
        denied = self._allowed(token, repo, "metadata", "read")
        if denied:
            return denied
        state, info = self.state, self.state.repos[repo]
        if not rest:
            return self._json(self._repo_json(info))
        if rest[0] == "branches" and len(rest) >= 2:
            sha = self.branch_sha(repo, "/".join(rest[1:]))
            if sha is None:
                raise NotFound
            return self._json(
                {
                    "name": rest[1],
                    "commit": {"sha": sha, "url": ""},
                    "protected": rest[1] == info.default_branch,
                }
            )
        if rest[:3] == ["git", "ref", "heads"]:
            sha = self.branch_sha(repo, "/".join(rest[3:]))
            if sha is None:
                raise NotFound
            return self._json(
                {
                    "ref": "refs/heads/" + "/".join(rest[3:]),
                    "object": {"sha": sha, "type": "commit"},
                }
            )
        if rest[0] == "contents":
            denied = self._allowed(token, repo, "contents", "read")
            if denied:
                return denied
            file_path = "/".join(rest[1:])
            ref = request.query_params.get("ref", info.default_branch)
            try:
                data = subprocess.run(
                    ["git", "show", f"{ref}:{file_path}"],
                    cwd=info.path,
                    capture_output=True,
                    check=True,
                ).stdout
            except subprocess.CalledProcessError:
                raise NotFound from None
            return self._json(
                {
                    "type": "file",
                    "encoding": "base64",
                    "path": file_path,
                    "name": file_path.rsplit("/", 1)[-1],
                    "size": len(data),
                    "sha": hashlib.sha1(data).hexdigest(),
                    "content": base64.b64encode(data).decode(),
                }
            )
        if rest[0] == "collaborators" and len(rest) == 3 and rest[2] == "permission":
            permission = state.collaborators.get((repo, rest[1]), "none")
            role = permission
            legacy = {"maintain": "write", "triage": "read"}.get(permission, permission)
            return self._json(
                {"permission": legacy, "role_name": role, "user": self._user(rest[1])}
            )
        if rest[0] == "git" and len(rest) >= 2 and rest[1] != "ref":
            return github_git.routes(self, request, repo, rest[1:], body, token)
        if rest[0] == "commits" and len(rest) == 2 and method == "GET":
            return github_git.rest_commit(self, repo, rest[1], token)
        if rest[0] == "issues":
            return talk.issues(self, request, repo, rest[1:], body, token)
        if rest[0] == "pulls":
            return talk.pulls(self, request, repo, rest[1:], body, token)
        if rest[0] == "commits" and len(rest) > 3:
            rest = ["commits", "/".join(rest[1:-1]), rest[-1]]  # a branch name with slashes
        if rest[0] == "commits" and len(rest) == 3 and rest[2] == "pulls":
            return talk.commit_pulls(self, request, repo, rest[1], token)
        if rest[0] in ("check-runs", "check-suites", "statuses", "commits"):
            return ci.checks(self, request, repo, rest, body, token)
        if rest[0] == "actions":
            return ci.actions(self, request, repo, rest[1:], token)
        if rest[0] == "deployments":
            return ci.deployments(self, request, repo, rest[1:], body, token)
        raise NotFound

    def _repo_json(self, info: Repo) -> dict[str, Any]:
        return shapes.repository(
            self.url, info.full_name, info.id, info.default_branch, info.private
        )

    def _issue_token(
        self, request: Request, installation_id: int, body: dict[str, Any]
    ) -> Response:
        app = self._app_from_jwt(request)
        if isinstance(app, JSONResponse):
            return app
        installation = self.installations.get(installation_id)
        if installation is None or installation.app.id != app.id:
            raise NotFound
        owner = installation.account
        repos = installation.repositories
        if body.get("repositories"):
            wanted = [f"{owner}/{name}" for name in body["repositories"]]
            if any(r not in installation.repositories for r in wanted):
                return self._error(
                    422,
                    "There is at least one repository that does not exist or is not accessible to the parent installation.",
                )
            repos = wanted
        permissions = dict(installation.permissions)
        if body.get("permissions"):
            for name, level in body["permissions"].items():
                if LEVELS.get(installation.permissions.get(name, "none"), 0) < LEVELS.get(level, 9):
                    return self._error(
                        422,
                        f"The permissions requested are not granted to this installation: {name}:{level}",
                    )
            permissions = dict(body["permissions"])
        permissions.setdefault("metadata", "read")
        value = "ghs_" + secrets.token_urlsafe(27).replace("-", "a").replace("_", "b")[:36]
        token = Token(value, installation, repos, permissions, time.time() + self.token_lifetime)
        self.tokens[value] = token
        return self._json(
            {
                "token": value,
                "expires_at": now_iso(self.token_lifetime),
                "permissions": permissions,
                "repository_selection": "selected",
                "repositories": [
                    self._repo_json(self.state.repos[r]) for r in repos if r in self.state.repos
                ],
            },
            201,
        )

    def _bot(self, token: Token | None) -> str:
        return f"{token.installation.app.slug}[bot]" if token else "ghost"

    def _paginate(self, request: Request, items: list[Any], key: str | None = None) -> Response:
        """One page of `items` with GitHub's link header; `key` wraps the page as
        {"total_count": n, key: page}, as the Checks and Actions lists are."""
        per_page = min(100, max(1, query_int(request, "per_page", 30)))
        page = max(1, query_int(request, "page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(items) // per_page))
        links = []
        base = str(request.url.remove_query_params("page"))
        sep = "&" if "?" in base else "?"
        if page < last:
            links += [
                f'<{base}{sep}page={page + 1}>; rel="next"',
                f'<{base}{sep}page={last}>; rel="last"',
            ]
        if page > 1:
            links += [
                f'<{base}{sep}page={page - 1}>; rel="prev"',
                f'<{base}{sep}page=1>; rel="first"',
            ]
        data: Any = chunk if key is None else {"total_count": len(items), key: chunk}
        return self._json(data, headers={"link": ", ".join(links)} if links else None)

    def _invalid(self, resource: str, field_name: str, code: str) -> Response:
        return self._json(
            {
                "message": "Validation Failed",
                "errors": [{"resource": resource, "field": field_name, "code": code}],
                "documentation_url": DOCS,
            },
            422,
        )

    async def _serve_log(self, request: Request) -> Response:
        entry = self._log_urls.get(request.path_params["key"])
        if entry is None or entry[1] < time.time():
            return PlainTextResponse("expired", 404)
        return PlainTextResponse(entry[0])

    # Git smart HTTP -------------------------------------------------------------------------------

    async def _git_http(self, request: Request) -> Response:
        repo = f"{request.path_params['owner']}/{request.path_params['repo']}"
        rest = request.path_params["rest"]
        self.requests.append(
            Recorded(
                request.method, request.url.path, request.url.query, dict(request.headers), None
            )
        )
        info = self.state.repos.get(repo)
        if info is None:
            return PlainTextResponse("Repository not found.", 404)
        pushing = (
            rest == "git-receive-pack" or request.query_params.get("service") == "git-receive-pack"
        )
        token = self._token(request)
        if info.private or pushing:
            if token is None:
                return PlainTextResponse(
                    "Invalid username or token.",
                    401,
                    headers={"WWW-Authenticate": 'Basic realm="GitHub"'},
                )
            level = "write" if pushing else "read"
            if (
                repo not in token.repositories
                or LEVELS.get(token.permissions.get("contents", "none"), 0) < LEVELS[level]
            ):
                return PlainTextResponse(
                    f"Permission to {repo}.git denied to {self._bot(token)}.", 403
                )
        before = self._heads(info) if pushing else {}
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root / "git"),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{repo}.git/{rest}",
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": request.url.query,
            "CONTENT_TYPE": request.headers.get("content-type", ""),
            "REMOTE_USER": self._bot(token),
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": os.devnull,
            "STANDIN_WORKFLOWS": (token.permissions.get("workflows", "none") if token else "none"),
        }
        if request.headers.get("content-encoding") == "gzip":
            env["HTTP_CONTENT_ENCODING"] = "gzip"
        body = await request.body()
        process = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            env=env,
            # No stdin pipe for bodiless requests: under uvloop, feeding b"" to a backend that
            # already exited raises "the handler is closed" (a flaky 500 on info/refs).
            stdin=asyncio.subprocess.PIPE if body else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate(body or None)
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name] = value.strip()
        if pushing and rest == "git-receive-pack":
            self._after_push(info, before, token)
        return Response(payload, status, headers=headers)

    def _heads(self, info: Repo) -> dict[str, str]:
        out = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", cwd=info.path)
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def _after_push(self, info: Repo, before: dict[str, str], token: Token | None) -> None:
        after = self._heads(info)
        for ref, sha in after.items():
            old = before.get(ref)
            if old == sha:
                continue
            fast_forward = (
                old is None
                or subprocess.run(
                    ["git", "merge-base", "--is-ancestor", old, sha], cwd=info.path, check=False
                ).returncode
                == 0
            )
            self.state.pushes.append(
                {
                    "repo": info.full_name,
                    "ref": ref,
                    "old": old,
                    "new": sha,
                    "fast_forward": fast_forward,
                    "pusher": self._bot(token),
                }
            )
            branch = ref.removeprefix("refs/heads/")
            for (repo, _), pull in self.state.pulls.items():
                if repo == info.full_name and pull["head"]["ref"] == branch:
                    pull["head"]["sha"] = sha


def _commit_files(work: Path, files: Mapping[str, str], message: str) -> None:
    for name, text in files.items():
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git("add", "-A", cwd=work)
    git(
        "-c",
        "user.name=octocat",
        "-c",
        "user.email=o@example.com",
        "commit",
        "-qm",
        message,
        cwd=work,
    )


def _jwt_problem(iat: float, exp: float, now: float) -> str | None:
    """GitHub's complaint about an App JWT's times (60 s of clock drift allowed), or None."""
    if exp < now - 60:
        return (
            "'Expiration time' claim ('exp') must be a numeric value representing the future "
            "time at which the assertion expires"
        )
    if exp - iat > 600 or exp > now + 660:
        return "'Expiration time' claim ('exp') is too far in the future"
    if iat > now + 60:
        return "'Issued at' claim ('iat') must be an Integer representing a time in the past"
    return None


def _overall(conclusions: Sequence[str | None]) -> str:
    """A suite's conclusion from its runs', worst first, as GitHub ranks them."""
    for worst in ("action_required", "cancelled", "timed_out", "failure", "stale"):
        if worst in conclusions:
            return worst
    return "neutral" if all(c in ("neutral", "skipped") for c in conclusions) else "success"


DEMO_PERMISSIONS = {
    "metadata": "read",
    "contents": "write",
    "issues": "write",
    "pull_requests": "write",
    "checks": "write",
    "statuses": "write",
    "actions": "write",
    "deployments": "write",
}


# The demo repository: a failing test its tests show. The test runs with the standard library's
# unittest on python3, which every Shipmate host has (the sandbox shows the host's folders when
# no image is named), so the demo needs no package index and no image to pass once fixed.
DEMO_FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    "test_calc.py": (
        "import unittest\n\nfrom calc import add\n\n\nclass AddTest(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
    ),
    ".github/shipmate.yml": "test: python3 -m unittest -v\n",
}


def demo(gh: GitHubStandIn) -> dict[str, str]:
    """An App "shipmate" installed on octo/widgets (a failing test, an issue, alice as a
    maintainer); the settings that point Shipmate at it, the private key written beside."""
    app = gh.create_app("shipmate")
    gh.create_repo("octo/widgets", dict(DEMO_FILES))
    installation = gh.install(app, "octo", ["octo/widgets"], DEMO_PERMISSIONS)
    gh.add_collaborator("octo/widgets", "alice", "maintain")
    gh.create_issue("octo/widgets", "add() subtracts", "2 + 3 should be 5.", user="alice")
    key = gh.root / "shipmate.private-key.pem"
    key.write_text(app.private_key_pem)
    key.chmod(0o600)
    return {
        "SHIPMATE_GITHUB_API_URL": gh.url,
        "SHIPMATE_APP_ID": str(app.id),
        "SHIPMATE_PRIVATE_KEY_PATH": str(key),
        "SHIPMATE_WEBHOOK_SECRET": app.webhook_secret,
        "INSTALLATION_ID": str(installation.id),
        "CLONE_URL": f"{gh.url}/octo/widgets.git",
    }


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m standins.github [--port N] [--root DIR]`: serve a demo installation until
    interrupted, printing the settings that point Shipmate at it."""
    import argparse
    import contextlib
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m standins.github")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--root", type=Path, default=None, help="where the repositories live")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        root = args.root or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        first_id = 10**6 * (1 + secrets.randbelow(1000))
        gh = stack.enter_context(GitHubStandIn(root, port=args.port, first_id=first_id))
        for name, value in demo(gh).items():
            print(f"{name}={value}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            gh._server.thread.join()


__all__ = ["App", "GitHubStandIn", "Installation", "Repo", "Token", "demo", "main"]


if __name__ == "__main__":
    main()
