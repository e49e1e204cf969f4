"""Scripted agent turns that several test files share."""

from __future__ import annotations

from standins.anthropic import Turn


def edit_add(new: str = "a + b", path: str = "calc.py") -> Turn:
    """The agent's edit of the fixture repository's add(): `a - b` becomes `new`."""
    return Turn.tool_use(
        "str_replace_based_edit_tool",
        {"command": "str_replace", "path": path, "old_str": "a - b", "new_str": new},
    )
