"""What Shipmate posts on GitHub: the sticky progress comment, the PR body and the check-run
summary. Pure: a `Progress` in, markdown out. The GitHub client passes each text through outbound
redaction as it posts it (`bot.github.calls.RepoCalls.outbound`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from bot.agent.ledger import Usage

Stage = Literal[
    "queued",
    "planning",
    "running",
    "testing",
    "done",
    "no_change",
    "failed",
    "blocked",
    "held",
    "stopped",
]

_STAGE_LINE: dict[str, str] = {
    "queued": "⏳ Queued",
    "planning": "🧭 Planning",
    "running": "🛠️ Working",
    "testing": "🧪 Running tests",
    "done": "✅ Done",
    "no_change": "✅ Done: no change was needed",
    "failed": "❌ Failed",
    "blocked": "🛑 Held back",
    "held": "✋ Held back: over the scope budget",
    "stopped": "⏹️ Stopped",
}
_MARKER = "<!-- shipmate:task:{key} -->"
_MARKER_RE = re.compile(r"<!-- shipmate:task:([^ ]+) -->")
_DIFF_LIMIT = 60_000
# GitHub refuses a comment over 65,536 characters; the diff gives way to fit (and whatever else
# is too long is cut), with room for outbound redaction's marks.
_BODY_LIMIT = 65_000
# A plan is the agent's prose: the pull request shows this much of it.
_PLAN_LIMIT = 20_000


@dataclass(frozen=True)
class Progress:
    """Where one task stands. `key` identifies the task's sticky comment across restarts."""

    key: str
    verb: str
    stage: Stage
    plan: str = ""
    diff: str = ""
    tests_passed: bool | None = None
    test_summary: str = ""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    steps: int = 0
    sandbox_seconds: float = 0.0
    pr_url: str | None = None
    reason: str = ""
    notes: tuple[str, ...] = ()
    run_url: str | None = None  # the run's dashboard page, with SHIPMATE_PUBLIC_URL set
    # Egress the proxy refused: (host, method, the command that tried), never headers or body.
    refused: tuple[tuple[str, str, str | None], ...] = ()


def _code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


def refused_block(refused: tuple[tuple[str, str, str | None], ...], *, heading: bool = True) -> str:
    """Each host the sandbox was refused, how, and by which command; and how to allow it."""
    lines = ["**Network access refused**", ""] if heading else []
    for host, method, command in refused:
        line = f"- {_code(host)} ({method or 'request'})"
        if command:
            line += f" by {_code(command)}"
        lines.append(line)
    lines.append(
        "\nTo allow a host, list it under `network: {allow: [...]}` in `.github/shipmate.yml` on "
        "the default branch: a change a human reviews and merges."
    )
    return "\n".join(lines)


def marker(key: str) -> str:
    return _MARKER.format(key=key)


def marker_key(body: str | None) -> str | None:
    """The task key of a sticky comment Shipmate wrote, if `body` is one."""
    match = _MARKER_RE.search(body or "")
    return match.group(1) if match else None


def _fence(text: str, lang: str = "") -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def _diff_block(diff: str, limit: int = _DIFF_LIMIT) -> str:
    shown = diff
    note = ""
    if len(diff) > limit:
        shown = diff[:limit]
        note = f"\n\n_The diff is cut at {limit:,} characters; the branch has all of it._"
    files = len(re.findall(r"(?m)^diff --git ", diff))
    added = len(re.findall(r"(?m)^\+(?!\+\+)", diff))
    removed = len(re.findall(r"(?m)^-(?!--)", diff))
    return (
        f"<details><summary>Diff: {files} file{'s' if files != 1 else ''}, "
        f"+{added} −{removed}</summary>\n\n{_fence(shown, 'diff')}{note}\n\n</details>"
    )


def cost_line(progress: Progress) -> str:
    u = progress.usage
    return (
        f"{progress.steps} steps · {u.input_tokens:,} input + {u.cache_read_input_tokens:,} cached"
        f" + {u.cache_creation_input_tokens:,} cache-write + {u.output_tokens:,} output tokens"
        f" · sandbox {progress.sandbox_seconds:.0f} s · **${progress.cost_usd:.2f}**"
    )


def headline(progress: Progress) -> str:
    """The stage as the comment and the check run head it: never "✅ Done" over failed tests,
    and "no change was needed" only when the tests passed without one."""
    if progress.stage == "done" and progress.tests_passed is False:
        return "⚠️ Tests failing"
    if progress.stage == "no_change" and progress.tests_passed is False:
        return "❌ No change made, and the tests fail"
    if progress.stage == "no_change" and progress.tests_passed is None:
        return "➖ No change made"
    return _STAGE_LINE[progress.stage]


def sticky_comment(progress: Progress) -> str:
    """The one comment per task, edited as the task goes."""
    parts = [
        marker(progress.key),
        f"### {headline(progress)} · `/shipmate {progress.verb}`",
    ]
    if progress.reason:
        parts.append(progress.reason)
    if progress.plan:
        parts.append("**Plan**\n\n" + progress.plan.strip())
    if progress.tests_passed is not None:
        verdict = "passed" if progress.tests_passed else "did not pass"
        summary = f"\n\n{_fence(progress.test_summary)}" if progress.test_summary else ""
        parts.append(f"**Tests** {verdict}.{summary}")
    diff_at = len(parts)
    if progress.pr_url:
        parts.append(f"Pull request: {progress.pr_url}")
    parts.extend(progress.notes)
    if progress.refused:
        parts.append(refused_block(progress.refused))
    if progress.run_url:
        parts.append(f"[View the run in Shipmate]({progress.run_url})")
    if progress.steps or progress.cost_usd:
        parts.append(f"<sub>{cost_line(progress)}</sub>")
    if progress.diff:
        # What the rest leaves, less the block's own frame and note.
        room = _BODY_LIMIT - len("\n\n".join(parts)) - 300
        if room > 0:
            parts.insert(diff_at, _diff_block(progress.diff, min(_DIFF_LIMIT, room)))
    return "\n\n".join(parts)[:_BODY_LIMIT]


def pr_body(progress: Progress, *, issue_number: int | None, lead: str | None = None) -> str:
    """The pull request's description: what it fixes (or `lead`), the plan, how it was tested,
    the cost."""
    parts: list[str] = []
    if lead:
        parts.append(lead)
    elif issue_number is not None:
        parts.append(f"Fixes #{issue_number}")
    if progress.plan:
        parts.append("## Plan\n\n" + _cut(progress.plan.strip(), _PLAN_LIMIT))
    if progress.tests_passed is None:
        tested = "The tests were not run."
    elif progress.tests_passed:
        tested = "The repository's tests pass in Shipmate's sandbox."
    else:
        tested = "The tests did **not** pass in Shipmate's sandbox, so this is a draft."
    if progress.test_summary:
        summary = progress.test_summary
        if len(summary) > _PLAN_LIMIT:  # the end of a test run's output says what failed
            summary = (
                f"… ({len(summary) - _PLAN_LIMIT:,} characters cut)\n" + summary[-_PLAN_LIMIT:]
            )
        tested += "\n\n" + _fence(summary)
    parts.append("## How it was tested\n\n" + tested)
    parts.extend(progress.notes)
    if progress.refused:
        parts.append(
            "## Network access refused\n\n" + refused_block(progress.refused, heading=False)
        )
    parts.append("## Cost\n\n" + cost_line(progress))
    parts.append(
        "<sub>Opened by Shipmate. Review it like any change: Shipmate never merges. "
        "Comment `/shipmate stop` to cancel work on it.</sub>"
    )
    # GitHub refuses a body over 65,536 characters, and the pull request with it.
    return "\n\n".join(parts)[:_BODY_LIMIT]


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rstrip() + f"\n\n… (cut: {len(text) - limit:,} more characters)"


def check_output(progress: Progress) -> tuple[str, str]:
    """The `Shipmate` check run's title and summary."""
    title = headline(progress)
    if progress.tests_passed is not None:
        title += " · tests " + ("passed" if progress.tests_passed else "failed")
    body = sticky_comment(progress).split("\n\n", 1)[-1]
    return title, body[:65_000]
