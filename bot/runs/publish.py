"""Shipmate, not the model, commits: the reviewed tree becomes one commit on a `shipmate/…`
branch. Done on the host in the review's own git directory, with hooks and every config but
ours off; the user's working tree and current branch are never touched."""

from __future__ import annotations

from pathlib import Path

from bot.config import slugify
from bot.runs.change import Change
from bot.sandbox.checkout import git

AUTHOR = ("-c", "user.name=Shipmate", "-c", "user.email=shipmate@users.noreply.github.com")


def free_branch(repo: Path, title: str) -> str:
    base = f"shipmate/{slugify(title)}"
    existing = set(
        git("for-each-ref", "--format=%(refname:short)", "refs/heads/shipmate/", cwd=repo).split()
    )
    name, n = base, 2
    while name in existing:
        name, n = f"{base}-{n}", n + 1
    return name


def local_commit(change: Change, message: str) -> str:
    """The reviewed tree as one commit on its base, in the review's own git directory: the
    source of what is published, whether pushed here or recreated through GitHub's API."""
    return git(
        *AUTHOR,
        "commit-tree",
        change.tree,
        "-p",
        change.base_sha,
        "-m",
        message,
        cwd=change.git_dir,
    ).strip()


def publish(
    change: Change,
    branch: str,
    message: str,
    *,
    push_to: str,
    token: str | None = None,
) -> str:
    """Commit the reviewed tree on its base and push it to `branch` of `push_to` (a local
    repository, for `shipmate run`) — a plain push, never a force. The commit is made here,
    from the tree the review judged, so what lands is exactly what was reviewed. Returns the
    commit's id. On GitHub, Shipmate's commits are made through its API instead
    (`bot.runs.api_commit`), so GitHub signs them."""
    sha = local_commit(change, message)
    git("push", "--quiet", push_to, f"{sha}:refs/heads/{branch}", cwd=change.git_dir, token=token)
    return sha


def commit_message(title: str, summary: str) -> str:
    subject = title.strip().splitlines()[0][:72] if title.strip() else "Shipmate change"
    body = summary.strip()[:3000]
    return (
        f"{subject}\n\n{body}\n\nMade by Shipmate in a sandbox; reviewed and merged by a human."
        if body
        else subject
    )
