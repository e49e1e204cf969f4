"""The GitHub stand-in's issue routes: an issue (or a pull request seen as one), its comments,
labels and reactions. On a pull request an issue route takes either the `issues` or the
`pull_requests` permission, on an issue only `issues`, as on GitHub."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from standins import github_shapes as shapes
from standins.github_common import DOCS, Call, NotFound, Token, now_iso

if TYPE_CHECKING:
    from standins.github import GitHubStandIn

REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
COMMENT_LIMIT = 65_536  # characters of a comment's body, as GitHub takes them


def _target(gh: GitHubStandIn, call: Call) -> tuple[int, dict[str, Any]]:
    """The issue or pull request the path names, once the token may see it."""
    number = call.number("issue_number")
    target = gh.state.issues.get((call.repo, number)) or gh.state.pulls.get((call.repo, number))
    if target is None:
        raise NotFound
    return number, target


def _allowed_on(gh: GitHubStandIn, call: Call, number: int) -> Response | None:
    level = "read" if call.method == "GET" else "write"
    denied = gh._allowed(call.token, call.repo, "issues", level)
    if denied is not None and (call.repo, number) in gh.state.pulls:
        return gh._allowed(call.token, call.repo, "pull_requests", level) and denied
    return denied


def _issue_json(gh: GitHubStandIn, repo: str, record: Mapping[str, Any]) -> dict[str, Any]:
    comments = len(gh.comments_on(repo, record["number"]))
    return shapes.issue(gh.url, repo, record, comments)


def get_issue(gh: GitHubStandIn, call: Call) -> Response:
    number, target = _target(gh, call)
    return _allowed_on(gh, call, number) or gh._json(_issue_json(gh, call.repo, target))


def list_comments(gh: GitHubStandIn, call: Call) -> Response:
    number, _ = _target(gh, call)
    denied = _allowed_on(gh, call, number)
    listed = [shapes.issue_comment(gh.url, c) for c in gh.comments_on(call.repo, number)]
    return denied or gh._paginate(call.request, listed)


def create_comment(gh: GitHubStandIn, call: Call) -> Response:
    number, _ = _target(gh, call)
    denied = _allowed_on(gh, call, number) or _too_long(gh, call.body)
    if denied:
        return denied
    comment = gh.create_comment(call.repo, number, call.body["body"], gh._bot(call.token))
    return gh._json(shapes.issue_comment(gh.url, comment), 201)


def _comment(gh: GitHubStandIn, call: Call) -> tuple[dict[str, Any], Response | None]:
    comment = gh.state.comments.get(call.number("comment_id"))
    if comment is None or comment["repo"] != call.repo:
        raise NotFound
    return comment, _allowed_on(gh, call, comment["issue"])


def get_comment(gh: GitHubStandIn, call: Call) -> Response:
    comment, denied = _comment(gh, call)
    return denied or gh._json(shapes.issue_comment(gh.url, comment))


def update_comment(gh: GitHubStandIn, call: Call) -> Response:
    comment, denied = _comment(gh, call)
    denied = denied or _too_long(gh, call.body)
    if denied:
        return denied
    comment.update(body=call.body["body"], updated_at=now_iso())
    return gh._json(shapes.issue_comment(gh.url, comment))


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
    answer = {"message": "Validation Failed", "errors": [error], "documentation_url": DOCS}
    return gh._json({**answer, "status": "422"}, 422)


def react_to_comment(gh: GitHubStandIn, call: Call) -> Response:
    comment, denied = _comment(gh, call)
    return denied or _react(gh, call.body, call.token, comment_id=comment["id"])


def react_to_issue(gh: GitHubStandIn, call: Call) -> Response:
    number, _ = _target(gh, call)
    return _allowed_on(gh, call, number) or _react(gh, call.body, call.token, issue=number)


def _react(
    gh: GitHubStandIn, body: Mapping[str, Any], token: Token | None, **target: int
) -> Response:
    content = body["content"]
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


def list_labels(gh: GitHubStandIn, call: Call) -> Response:
    number, target = _target(gh, call)
    return _allowed_on(gh, call, number) or gh._paginate(call.request, target["labels"])


def add_labels(gh: GitHubStandIn, call: Call) -> Response:
    number, target = _target(gh, call)
    denied = _allowed_on(gh, call, number)
    if denied:
        return denied
    have = [label["name"] for label in target["labels"]]
    for given in call.body.get("labels") or []:
        name = given["name"] if isinstance(given, dict) else str(given)
        if name not in have:
            target["labels"].append(gh._label(call.repo, name))
            have.append(name)
    return gh._json(target["labels"])


def remove_label(gh: GitHubStandIn, call: Call) -> Response:
    number, target = _target(gh, call)
    denied = _allowed_on(gh, call, number)
    if denied:
        return denied
    name = call.params["name"]
    if name not in [label["name"] for label in target["labels"]]:
        return gh._error(404, "Label does not exist")
    target["labels"] = [label for label in target["labels"] if label["name"] != name]
    return gh._json(target["labels"])
