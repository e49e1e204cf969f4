"""The `Shipmate` check run: in progress on a pull request's head while a run works on it (with a
Stop button), and completed on each commit Shipmate pushes, with the sticky comment's summary and
the change's ledger (Retry after a failure). GitHub sends the buttons back as
check_run.requested_action (handlers/)."""

from __future__ import annotations

from bot.github.client import RepoClient
from bot.runs.context import CHECKS, Run
from bot.runs.render import Progress, check_output

STOP_ACTION = {
    "label": "Stop",
    "description": "Stop this task; nothing is pushed",
    "identifier": "stop",
}
RETRY_ACTION = {"label": "Retry", "description": "Run this task again", "identifier": "retry"}


async def report_check(
    run: Run, writer: RepoClient, shown: Progress, head_sha: str, ledger: str = ""
) -> None:
    """The `Shipmate` check run on a commit Shipmate pushed, with the sticky comment's summary
    and the change's ledger."""
    title, summary = check_output(shown)
    if ledger:
        summary = f"{summary}\n\n{ledger}"[:65_000]
    await writer.create_check_run(
        name="Shipmate",
        head_sha=head_sha,
        status="completed",
        conclusion="failure" if shown.tests_passed is False else "success",
        title=title,
        summary=summary,
        details_url=run.url,
        actions=[RETRY_ACTION] if shown.tests_passed is False else [],
    )


async def start_check(run: Run, head_sha: str) -> None:
    """While the task runs, the pull request's head shows it, with a Stop button."""
    checks = await run.client(CHECKS)
    live = await checks.create_check_run(
        name="Shipmate",
        head_sha=head_sha,
        status="in_progress",
        title=f"Working: /shipmate {run.verb}",
        summary="Shipmate is working on this pull request. **Stop** cancels it.",
        details_url=run.url,
        actions=[STOP_ACTION],
    )
    run.live_check = live.id


async def end_check(run: Run, final: Progress) -> None:
    """The in-progress check run ends with the task: its buttons go, Retry after a failure."""
    if run.live_check is None:
        return
    failed = final.stage in ("failed", "blocked", "stopped") or final.tests_passed is False
    title, summary = check_output(final)
    checks = await run.client(CHECKS)
    await checks.update_check_run(
        run.live_check,
        conclusion="failure" if failed else "neutral",
        title=title,
        summary=summary,
        actions=[RETRY_ACTION] if failed else [],
    )
    run.live_check = None
