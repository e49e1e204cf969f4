"""The GitHub stand-in's pull request routes: listing, opening and editing pull requests, the
files they change, and the pull requests a commit belongs to (reviews: github_reviews.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from standins import github_shapes_pulls as shapes
from standins.github_common import Call, NotFound, git, now_iso

if TYPE_CHECKING:
    from standins.github import GitHubStandIn

STATUSES = {"A": "added", "M": "modified", "D": "removed", "R": "renamed", "C": "copied"}


def pull_of(gh: GitHubStandIn, call: Call) -> dict[str, Any]:
    pull = gh.state.pulls.get((call.repo, call.number("pull_number")))
    if pull is None:
        raise NotFound
    return pull


def list_pulls(gh: GitHubStandIn, call: Call) -> Response:
    pulls = [p for (r, _), p in gh.state.pulls.items() if r == call.repo]
    head = call.query.get("head")
    if head:
        pulls = [p for p in pulls if p["head"]["ref"] == head.split(":")[-1]]
    base = call.query.get("base")
    if base:
        pulls = [p for p in pulls if p["base"]["ref"] == base]
    wanted = call.query.get("state", "open")
    if wanted != "all":
        pulls = [p for p in pulls if p["state"] == wanted]
    return gh._paginate(call.request, pulls)


def create_pull(gh: GitHubStandIn, call: Call) -> Response:
    body, repo = call.body, call.repo
    head = str(body["head"]).split(":")[-1]
    if gh.branch_sha(repo, head) is None:
        return gh._invalid("PullRequest", "head", "invalid")
    if gh.branch_sha(repo, str(body["base"])) is None:
        return gh._invalid("PullRequest", "base", "invalid")
    pull = gh._new_pull(
        repo,
        head_ref=head,
        head_repo=gh.state.repos[repo],
        base_ref=str(body["base"]),
        title=str(body.get("title") or ""),
        body=body.get("body"),
        author=gh._bot(call.token),
        draft=bool(body.get("draft")),
    )
    return gh._json(pull, 201)


def get_pull(gh: GitHubStandIn, call: Call) -> Response:
    return gh._json(pull_of(gh, call))


def update_pull(gh: GitHubStandIn, call: Call) -> Response:
    pull, body = pull_of(gh, call), call.body
    if "base" in body and gh.branch_sha(call.repo, str(body["base"])) is None:
        return gh._invalid("PullRequest", "base", "invalid")
    for name in ("title", "body", "maintainer_can_modify"):
        if name in body:
            pull[name] = body[name]
    if "base" in body:
        pull["base"] = {
            **pull["base"],
            "ref": body["base"],
            "label": f"{call.params['owner']}:{body['base']}",
        }
    if body.get("state") in ("open", "closed") and body["state"] != pull["state"]:
        closing = body["state"] == "closed"
        pull.update(state=body["state"], closed_at=now_iso() if closing else None)
    pull["updated_at"] = now_iso()
    return gh._json(pull)


def list_files(gh: GitHubStandIn, call: Call) -> Response:
    pull = pull_of(gh, call)
    changes = changed_files(gh, call.repo, pull)
    head = str(pull["head"]["sha"])
    files = [shapes.diff_entry(gh.url, call.repo, head, change) for change in changes]
    return gh._paginate(call.request, files)


def changed_files(gh: GitHubStandIn, repo: str, pull: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What the pull request changes: the diff from its merge base with the base branch."""
    path = gh.state.repos[repo].path
    base = gh.branch_sha(repo, pull["base"]["ref"]) or ""
    head = str(pull["head"]["sha"])
    span = f"{base}...{head}"
    names = git("diff", "--name-status", "--no-renames", span, cwd=path).splitlines()
    counts = git("diff", "--numstat", "--no-renames", span, cwd=path).splitlines()
    files = []
    for status_line, count_line in zip(names, counts, strict=True):
        status, _, name = status_line.partition("\t")
        added, removed, _ = count_line.split("\t", 2)
        blob = _blob(path, head, name) if status != "D" else None
        files.append(
            {
                "filename": name,
                "status": STATUSES.get(status[:1], "modified"),
                "sha": blob,
                "additions": int(added) if added.isdigit() else 0,
                "deletions": int(removed) if removed.isdigit() else 0,
            }
        )
    return files


def _blob(path: Path, commit: str, name: str) -> str | None:
    try:
        return git("rev-parse", f"{commit}:{name}", cwd=path).strip()
    except subprocess.CalledProcessError:
        return None


def commit_pulls(gh: GitHubStandIn, call: Call) -> Response:
    """Pull requests a commit belongs to: their head, one of their commits, or their merge."""
    repo, ref = call.repo, call.params["commit_sha"]
    sha = gh.resolve(repo, ref)
    if sha is None:
        return gh._error(422, f"No commit found for SHA: {ref}")
    path = gh.state.repos[repo].path
    found = []
    for (r, _), pull in gh.state.pulls.items():
        if r != repo:
            continue
        if sha in (pull["head"]["sha"], pull.get("merge_commit_sha")) or (
            pull["state"] == "open" and _in_pull(path, pull, sha)
        ):
            found.append(pull)
    return gh._paginate(call.request, found)


def _in_pull(path: Path, pull: Mapping[str, Any], sha: str) -> bool:
    base = f"refs/heads/{pull['base']['ref']}"
    try:
        commits = git("rev-list", pull["head"]["sha"], "--not", base, "--", cwd=path)
    except subprocess.CalledProcessError:
        return False
    return sha in commits.split()
