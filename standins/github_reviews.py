"""The GitHub stand-in's review routes: a pull request's reviews, their line comments, and
replies to a comment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from standins.github_common import Call, NotFound, owned, public
from standins.github_pulls import pull_of

if TYPE_CHECKING:
    from standins.github import GitHubStandIn

STATES = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}


def _review(gh: GitHubStandIn, call: Call) -> tuple[dict[str, Any], dict[str, Any]]:
    pull = pull_of(gh, call)
    reviews = gh.state.reviews.get((call.repo, pull["number"]), [])
    wanted = call.number("review_id")
    review = next((r for r in reviews if r["id"] == wanted), None)
    if review is None:
        raise NotFound
    return pull, review


def list_reviews(gh: GitHubStandIn, call: Call) -> Response:
    pull = pull_of(gh, call)
    return gh._paginate(call.request, gh.state.reviews.get((call.repo, pull["number"]), []))


def get_review(gh: GitHubStandIn, call: Call) -> Response:
    return gh._json(_review(gh, call)[1])


def review_comments(gh: GitHubStandIn, call: Call) -> Response:
    _, review = _review(gh, call)
    listed = [
        public(c)
        for c in gh.state.review_comments.values()
        if c["pull_request_review_id"] == review["id"]
    ]
    return gh._paginate(call.request, listed)


def create_review(gh: GitHubStandIn, call: Call) -> Response:
    pull, body = pull_of(gh, call), call.body
    event = body.get("event")
    if event in ("REQUEST_CHANGES", "COMMENT") and not body.get("body"):
        return gh._error(422, f'Unprocessable Entity: "Review body is required for {event}"')
    comments = body.get("comments") or []
    if not all(c.get("path") and c.get("body") for c in comments):
        return gh._invalid("PullRequestReviewComment", "comments", "invalid")
    state = STATES.get(str(event), "PENDING")
    review = gh._new_review(
        call.repo, pull["number"], gh._bot(call.token), state, str(body.get("body") or ""), comments
    )
    return gh._json(review)


def list_comments(gh: GitHubStandIn, call: Call) -> Response:
    pull = pull_of(gh, call)
    listed = [
        public(c)
        for c in gh.state.review_comments.values()
        if c["_repo"] == call.repo and c["_pull"] == pull["number"]
    ]
    return gh._paginate(call.request, listed)


def get_comment(gh: GitHubStandIn, call: Call) -> Response:
    return gh._json(public(owned(gh.state.review_comments, call.params["comment_id"], call.repo)))


def reply(gh: GitHubStandIn, call: Call) -> Response:
    pull = pull_of(gh, call)
    parent = owned(gh.state.review_comments, call.params["comment_id"], call.repo)
    if parent["_pull"] != pull["number"]:
        raise NotFound
    root = parent.get("in_reply_to_id") or parent["id"]
    fields = {"path": parent["path"], "line": parent["line"], "body": call.body["body"]}
    made = gh._new_review_comment(
        call.repo, pull, gh.next_id(), gh._bot(call.token), fields, in_reply_to=root
    )
    return gh._json(public(made), 201)
