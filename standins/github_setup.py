"""Setting the GitHub stand-in up as a test needs it: Apps and their installations, bare
repositories with commits pushed as a person would, collaborators, issues and comments."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from standins.github_common import App, Installation, Repo, git, now_iso
from standins.github_core import Core

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


class RepoSetup(Core):
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
        commit_files(work, files, "Initial commit")
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
            "labels": [self._label(repo, name) for name in labels],
            "html_url": f"{self.url}/{repo}/issues/{number}",
            "created_at": now_iso(),
            "updated_at": now_iso(),
        }
        self.state.issues[(repo, number)] = issue
        return issue

    def _next_number(self, repo: str) -> int:
        return (
            len([k for k in self.state.issues if k[0] == repo])
            + len([k for k in self.state.pulls if k[0] == repo])
            + 1
        )

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
            "html_url": f"{self.url}/{repo}/issues/{number}#issuecomment-{comment_id}",
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
        commit_files(work, files, message)
        git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
        return git("rev-parse", "HEAD", cwd=work).strip()


def commit_files(work: Path, files: Mapping[str, str], message: str) -> None:
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
