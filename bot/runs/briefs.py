"""What a run is told: a `Task` (as a handler decided it) and the issue or pull request it is
about become the brief's task line and its context blocks. Pure; the GitHub run and
`shipmate eval --deploy` build their briefs with the same two functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.runs.request import Task


def task_text(task: Task, number: int, issue: Mapping[str, Any]) -> str:
    if task.pr is not None:
        return task.instruction or "Make the smallest change that fixes the feedback below."
    notes = f" ({task.notes})" if task.notes else ""
    return (task.instruction or f"Resolve issue #{number}: {issue.get('title', '')}") + notes


def context_blocks(task: Task, issue: Mapping[str, Any]) -> list[tuple[str, str]]:
    label = task.feedback_label or "feedback"
    if task.pr is not None:
        return [(label, task.feedback or "")]
    blocks = [("issue body", str(issue.get("body") or ""))]
    if task.feedback:
        blocks.append((label, task.feedback))
    return blocks
