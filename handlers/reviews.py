"""A review on a Shipmate pull request (changes requested, or comments) becomes one revision run
with every comment of that review; the run pushes a new commit on the same branch and answers
each comment in its thread."""

from __future__ import annotations

from bot.runs.repairs import shipmate_pull
from bot.runs.request import PullTarget, Task
from bot.runs.tasks import enqueue_run, may_trigger
from bot.triggers.context import Context
from bot.triggers.events import PullRequestReview
from bot.triggers.routing import Router

router = Router()


@router.register("pull_request_review", action="submitted")
async def review_submitted(context: Context) -> None:
    event = PullRequestReview.model_validate(context.payload)
    review = event.review
    if context.sender_is_bot or review.state.lower() not in ("changes_requested", "commented"):
        return
    number = event.pull_request.number
    repo = await context.repo()
    pull = await shipmate_pull(context, repo, number)
    if pull is None or not await may_trigger(context, repo, number):
        return
    comments = await repo.review_comments(number, review.id)
    lines = [f"Review by {context.sender}: {review.body or ''}".strip()]
    lines += [f"- {c.path}:{c.line}: {c.body}" for c in comments]
    await enqueue_run(
        context,
        repo,
        number,
        "revise",
        Task(
            pr=PullTarget(
                number=number,
                head_ref=pull["head"]["ref"],
                head_sha=pull["head"]["sha"],
                reply_to=tuple(c.id for c in comments),
            ),
            instruction="Address this review of your pull request with the smallest change.",
            feedback="\n".join(lines),
            feedback_label="review",
        ),
    )
