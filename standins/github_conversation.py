"""The GitHub stand-in's conversation routes: issues, comments, labels and reactions; pull
requests, reviews and review comments; the pull requests a commit belongs to."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from standins import github_shapes as shapes
from standins.github_common import NotFound, Token, git, now_iso, owned, path_id, public

if TYPE_CHECKING:
    from standins.github import GitHubStandIn

COMMENT_LIMIT = 65_536  # characters of a comment's body, as GitHub takes them


def issues(
    gh: GitHubStandIn,
    request: Request,
    repo: str,
    rest: list[str],
    body: dict[str, Any],
    token: Token | None,
) -> Response:
    state, method = gh.state, request.method
    level = "read" if method == "GET" else "write"
    if rest and rest[0] == "comments":
        comment = state.comments.get(path_id(rest[1])) if len(rest) > 1 else None
        if comment is None or comment["repo"] != repo:
            raise NotFound
        denied = _allowed_on(gh, token, repo, comment["issue"], level)
        if denied:
            return denied
        if len(rest) == 3 and rest[2] == "reactions" and method == "POST":
            return _react(gh, body, token, comment_id=comment["id"])
        if len(rest) != 2 or method not in ("GET", "PATCH"):
            raise NotFound
        if method == "PATCH":
            if too_long := _too_long(gh, body):
                return too_long
            comment["body"] = body.get("body", comment["body"])
            comment["updated_at"] = now_iso()
        return gh._json(_comment_json(comment))
    number = path_id(rest[0]) if rest else 0
    if (repo, number) not in state.issues and (repo, number) not in state.pulls:
        raise NotFound
    denied = _allowed_on(gh, token, repo, number, level)
    if denied:
        return denied
    target = state.issues.get((repo, number)) or state.pulls[(repo, number)]
    if len(rest) == 1 and method == "GET":
        return gh._json(target)
    if rest[1:] == ["comments"] and method == "POST":
        if too_long := _too_long(gh, body):
            return too_long
        comment = gh.create_comment(repo, number, body.get("body", ""), gh._bot(token))
        return gh._json(_comment_json(comment), 201)
    if rest[1:] == ["comments"] and method == "GET":
        listed = [_comment_json(c) for c in gh.comments_on(repo, number)]
        return gh._paginate(request, listed)
    if rest[1] == "labels":
        if method == "POST":
            names = body.get("labels", [])
            target["labels"] += [
                {"name": n} for n in names if n not in [x["name"] for x in target["labels"]]
            ]
        elif method == "DELETE" and len(rest) == 3:
            if rest[2] not in [x["name"] for x in target["labels"]]:
                return gh._error(404, "Label does not exist")
            target["labels"] = [x for x in target["labels"] if x["name"] != rest[2]]
        return gh._json(target["labels"])
    if rest[1:] == ["reactions"] and method == "POST":
        return _react(gh, body, token, issue=number)
    raise NotFound


def _allowed_on(
    gh: GitHubStandIn, token: Token | None, repo: str, number: int, level: str
) -> Response | None:
    """Issue routes on an issue need `issues`; on a pull request either `issues` or
    `pull_requests` will do, as on GitHub."""
    denied = gh._allowed(token, repo, "issues", level)
    if denied is not None and (repo, number) in gh.state.pulls:
        return gh._allowed(token, repo, "pull_requests", level) and denied
    return denied


def _too_long(gh: GitHubStandIn, body: Mapping[str, Any]) -> Response | None:
    """GitHub's answer to a comment body over 65,536 characters."""
    if len(str(body.get("body") or "")) <= COMMENT_LIMIT:
        return None
    error = {
        "resource": "IssueComment",
        "code": "unprocessable",
        "field": "data",
        "message": f"Body is too long (maximum is {COMMENT_LIMIT} characters)",
    }
    return gh._json({"message": "Validation Failed", "errors": [error], "status": "422"}, 422)


def _react(
    gh: GitHubStandIn, body: Mapping[str, Any], token: Token | None, **target: int
) -> Response:
    content = body.get("content")
    if content not in ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"):
        return gh._invalid("Reaction", "content", "invalid")
    user = gh._user(gh._bot(token))
    for existing in gh.state.reactions:
        # As GitHub: the same user's same reaction again is the existing one, answered 200.
        same_target = all(existing.get(key) == value for key, value in target.items())
        if same_target and existing["content"] == content and existing["user"] == user:
            return gh._json({k: v for k, v in existing.items() if k not in target}, 200)
    reaction_id = gh.next_id()
    reaction = {
        "id": reaction_id,
        "node_id": shapes.node_id("Reaction", reaction_id),
        "content": content,
        "user": user,
        "created_at": now_iso(),
        **target,
    }
    gh.state.reactions.append(reaction)
    return gh._json({k: v for k, v in reaction.items() if k not in target}, 201)


def _comment_json(comment: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in comment.items() if k not in ("repo", "issue")}


def pulls(
    gh: GitHubStandIn,
    request: Request,
    repo: str,
    rest: list[str],
    body: dict[str, Any],
    token: Token | None,
) -> Response:
    method = request.method
    write = method in ("POST", "PATCH", "PUT", "DELETE")
    denied = gh._allowed(token, repo, "pull_requests", "write" if write else "read")
    if denied:
        return denied
    if not rest:
        return (
            _create_pull(gh, repo, body, token)
            if method == "POST"
            else _list_pulls(gh, request, repo)
        )
    if rest[0] == "comments" and len(rest) == 2 and method == "GET":
        comment = owned(gh.state.review_comments, rest[1], repo)
        return gh._json(public(comment))
    number = path_id(rest[0])
    pull = gh.state.pulls.get((repo, number))
    if pull is None:
        raise NotFound
    if len(rest) == 1 and method in ("GET", "PATCH"):
        if method == "PATCH":
            for name in ("title", "body", "state", "base"):
                if name in body:
                    pull[name] = (
                        body[name] if name != "base" else {**pull["base"], "ref": body["base"]}
                    )
        return gh._json(pull)
    if rest[1:] == ["files"] and method == "GET":
        return gh._paginate(request, _changed_files(gh, repo, pull))
    if rest[1] == "reviews":
        return _reviews(gh, request, repo, pull, rest[2:], body, token)
    if rest[1] == "comments":
        return _review_comments(gh, request, repo, pull, rest[2:], body, token)
    raise NotFound


def _changed_files(gh: GitHubStandIn, repo: str, pull: dict[str, Any]) -> list[dict[str, Any]]:
    """What the pull request changes: the diff from its merge base with the base branch."""
    path = gh.state.repos[repo].path
    base = gh.branch_sha(repo, pull["base"]["ref"]) or ""
    head = str(pull["head"]["sha"])
    statuses = {"A": "added", "M": "modified", "D": "removed", "R": "renamed"}
    out = git("diff", "--name-status", "--no-renames", f"{base}...{head}", cwd=path)
    files = []
    for line in out.splitlines():
        status, _, name = line.partition("\t")
        files.append({"filename": name, "status": statuses.get(status[:1], "modified")})
    return files


def _create_pull(
    gh: GitHubStandIn, repo: str, body: Mapping[str, Any], token: Token | None
) -> Response:
    head = str(body.get("head") or "").split(":")[-1]
    head_sha = gh.branch_sha(repo, head) if head else None
    if head_sha is None:
        return gh._invalid("PullRequest", "head", "invalid")
    info = gh.state.repos[repo]
    base = str(body.get("base") or info.default_branch)
    if gh.branch_sha(repo, base) is None:
        return gh._invalid("PullRequest", "base", "invalid")
    pull = gh._new_pull(
        repo,
        head_ref=head,
        head_sha=head_sha,
        head_repo=info,
        base_ref=base,
        title=str(body.get("title") or ""),
        body=body.get("body"),
        author=gh._bot(token),
        draft=bool(body.get("draft")),
    )
    return gh._json(pull, 201)


def _list_pulls(gh: GitHubStandIn, request: Request, repo: str) -> Response:
    pulls = [p for (r, _), p in gh.state.pulls.items() if r == repo]
    head = request.query_params.get("head")
    if head:
        pulls = [p for p in pulls if p["head"]["ref"] == head.split(":")[-1]]
    base = request.query_params.get("base")
    if base:
        pulls = [p for p in pulls if p["base"]["ref"] == base]
    wanted = request.query_params.get("state", "open")
    if wanted != "all":
        pulls = [p for p in pulls if p["state"] == wanted]
    return gh._paginate(request, pulls)


def _reviews(
    gh: GitHubStandIn,
    request: Request,
    repo: str,
    pull: dict[str, Any],
    rest: list[str],
    body: dict[str, Any],
    token: Token | None,
) -> Response:
    number, method = pull["number"], request.method
    reviews = gh.state.reviews.get((repo, number), [])
    if not rest and method == "POST":
        return _create_review(gh, repo, pull, body, token)
    if not rest and method == "GET":
        return gh._paginate(request, reviews)
    review = next((r for r in reviews if r["id"] == path_id(rest[0])), None)
    if review is None:
        raise NotFound
    if len(rest) == 1 and method == "GET":
        return gh._json(review)
    if rest[1:] == ["comments"] and method == "GET":
        listed = [
            public(c)
            for c in gh.state.review_comments.values()
            if c["pull_request_review_id"] == review["id"]
        ]
        return gh._paginate(request, listed)
    raise NotFound


def _create_review(
    gh: GitHubStandIn, repo: str, pull: dict[str, Any], body: Mapping[str, Any], token: Token | None
) -> Response:
    states = {
        "APPROVE": "APPROVED",
        "REQUEST_CHANGES": "CHANGES_REQUESTED",
        "COMMENT": "COMMENTED",
        None: "PENDING",
    }
    event = body.get("event")
    if event not in states:
        return gh._invalid("PullRequestReview", "event", "invalid")
    if event in ("REQUEST_CHANGES", "COMMENT") and not body.get("body"):
        return gh._error(422, f'Unprocessable Entity: "Review body is required for {event}"')
    comments = body.get("comments") or []
    if not isinstance(comments, list) or not all(
        isinstance(c, dict) and c.get("path") and c.get("body") for c in comments
    ):
        return gh._invalid("PullRequestReviewComment", "comments", "invalid")
    review = gh._new_review(
        repo,
        pull["number"],
        gh._bot(token),
        states[event],
        str(body.get("body") or ""),
        comments,
    )
    return gh._json(review)


def _review_comments(
    gh: GitHubStandIn,
    request: Request,
    repo: str,
    pull: dict[str, Any],
    rest: list[str],
    body: dict[str, Any],
    token: Token | None,
) -> Response:
    number, method = pull["number"], request.method
    if not rest and method == "GET":
        listed = [
            public(c)
            for c in gh.state.review_comments.values()
            if c["_repo"] == repo and c["_pull"] == number
        ]
        return gh._paginate(request, listed)
    if len(rest) == 2 and rest[1] == "replies" and method == "POST":
        parent = owned(gh.state.review_comments, rest[0], repo)
        if parent["_pull"] != number:
            raise NotFound
        if not body.get("body"):
            return gh._invalid("PullRequestReviewComment", "body", "missing_field")
        root = parent.get("in_reply_to_id") or parent["id"]
        reply = gh._new_review_comment(
            repo,
            pull,
            gh.next_id(),
            gh._bot(token),
            {"path": parent["path"], "line": parent["line"], "body": body["body"]},
            in_reply_to=root,
        )
        return gh._json(public(reply), 201)
    raise NotFound


def commit_pulls(
    gh: GitHubStandIn, request: Request, repo: str, ref: str, token: Token | None
) -> Response:
    """Pull requests a commit belongs to: their head, one of their commits, or their merge."""
    denied = gh._allowed(token, repo, "pull_requests", "read")
    if denied:
        return denied
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
    return gh._paginate(request, found)


def _in_pull(path: Path, pull: Mapping[str, Any], sha: str) -> bool:
    base = f"refs/heads/{pull['base']['ref']}"
    try:
        commits = git("rev-list", pull["head"]["sha"], "--not", base, "--", cwd=path)
    except subprocess.CalledProcessError:
        return False
    return sha in commits.split()
