"""A flaky Actions failure on Shipmate's pull request: its failed jobs are re-run once, with a
token that may do only that, and the pull request's CI comment says so.

Capped twice over, both by GitHub's own record: a run is re-run only from its first attempt, and
a pull request gets at most `MAX_RERUNS_PER_PULL` re-runs (counted in that comment, Shipmate's
own: the same marker in anyone else's is read as nothing). Past either cap, the failure is
treated as broken and gets a repair run.
"""

from __future__ import annotations

import re

from githubkit.exception import RequestFailed

from bot.github.client import RepoClient, WorkflowRun
from bot.github.replies import written_by
from bot.triggers.ci_verdict import Verdict
from bot.triggers.context import Context

RERUN_PERMISSIONS = {"metadata": "read", "actions": "write"}
MAX_RERUNS_PER_PULL = 3
_MARKER = "<!-- shipmate:ci-reruns -->"
_ENTRY = re.compile(r"(?m)^- 🔁 ")


def rerun_allowed(run: WorkflowRun, comment_body: str | None) -> bool:
    """From the run's first attempt only, and within the pull request's cap."""
    done = len(_ENTRY.findall(comment_body or ""))
    return run.run_attempt == 1 and done < MAX_RERUNS_PER_PULL


def rerun_comment(previous: str | None, run: WorkflowRun, reason: str) -> str:
    """The pull request's CI comment with one more re-run listed."""
    entries = _ENTRY.split(previous or "")[1:] if previous else []
    lines = [f"- 🔁 {entry.strip()}" for entry in entries]
    lines.append(
        f"- 🔁 `{run.name}` [run {run.id}]({run.html_url}) failed, and it looks flaky: "
        f"{reason}. I re-ran its failed jobs once instead of changing code; if they "
        "fail again, I'll try a repair."
    )
    return "\n".join([_MARKER, "### CI re-runs", *lines])


async def ci_comment(
    context: Context, repo: RepoClient, number: int
) -> tuple[int | None, str | None]:
    """The pull request's CI comment: the first with the marker that Shipmate's bot wrote."""
    author = (await context.replies()).author
    for comment in await repo.comments(number):
        if _MARKER in comment.body and written_by(comment, author):
            return comment.id, comment.body
    return None, None


async def rerun_flaky(
    context: Context, repo: RepoClient, number: int, run: WorkflowRun, verdict: Verdict
) -> bool:
    """Re-run the failed jobs of `run` and say so; False when not allowed or GitHub refused
    (the App lacks `actions: write`, the run is already running), so the caller repairs."""
    comment_id, body = await ci_comment(context, repo, number)
    if not rerun_allowed(run, body):
        context.log.info("ci.rerun_capped", run=run.id, attempt=run.run_attempt)
        return False
    try:
        rerunner = await context.repo_with(RERUN_PERMISSIONS)
        await rerunner.rerun_failed_jobs(run.id)
    except (RequestFailed, RuntimeError) as exc:
        context.log.warning("ci.rerun_refused", run=run.id, error=str(exc)[:200])
        return False
    context.log.info("ci.rerun", run=run.id, reason=verdict.reason)
    await _say(repo, number, (comment_id, body), run, verdict.reason)
    return True


async def rerun_before(context: Context, repo: RepoClient, number: int, run: WorkflowRun) -> bool:
    """Whether an earlier attempt of this delivery's job re-ran `run` (its worker was lost
    before the job was marked done). That decision stands: GitHub's run has moved on to its
    new attempt, so a verdict made now would read no failure. The CI comment says it once."""
    if not await _rerun_by_us(context, repo, run):
        return False
    comment_id, body = await ci_comment(context, repo, number)
    if not re.search(rf"\brun {run.id}\b", body or ""):
        reason = "so it was judged when it failed"
        await _say(repo, number, (comment_id, body), run, reason)
    return True


async def _rerun_by_us(context: Context, repo: RepoClient, run: WorkflowRun) -> bool:
    """The earlier attempt's audit row says it re-ran `run`; or, for one killed between the
    re-run and that row, GitHub shows an attempt after the delivered one that Shipmate's App
    started."""
    earlier = await context.earlier_actions()
    target = f"/actions/runs/{run.id}"
    if any(
        row["action"] == "actions.rerun_failed_jobs" and str(row["target"]).endswith(target)
        for row in earlier
    ):
        return True
    if context.attempt == 1:
        return False
    now = await repo.workflow_run(run.id)
    author = (await context.replies()).author
    return now.run_attempt > run.run_attempt and now.triggering_actor == author


async def _say(
    repo: RepoClient,
    number: int,
    comment: tuple[int | None, str | None],
    run: WorkflowRun,
    reason: str,
) -> None:
    comment_id, body = comment
    text = rerun_comment(body, run, reason)
    if comment_id is None:
        await repo.comment(number, text)
    else:
        await repo.edit_comment(comment_id, text)
