"""The demo's story, as data: the repository, the issue, the CI log, and what the scripted
model answers at each step. Pure: nothing here starts or sends anything."""

from __future__ import annotations

from typing import Any

from standins.anthropic import Turn

REPO = "octo/widgets"
ISSUE_TITLE = "add() subtracts"
ISSUE_BODY = "`add(2, 3)` returns -1; it should be 5. The test in test_calc.py fails."
FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    "test_calc.py": (
        "import unittest\n\nfrom calc import add\n\n\n"
        "class AddTest(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
    ),
    ".github/shipmate.yml": "test: python3 -m unittest -q\n",
    "README.md": "# widgets\n\nA tiny library Shipmate's demo works on.\n",
}
FIX_PLAN = "1. Run the tests to see the failure.\n2. Make add() add.\n3. Run the tests again."
CI_LOG = "\n".join(
    [f"2026-01-01T00:00:{n:02d}Z setup: installing dependencies ({n}/40)" for n in range(40)]
    + [
        "2026-01-01T00:01:00Z Run mypy --strict calc.py",
        "calc.py:1: error: Function is missing a type annotation  [no-untyped-def]",
        "Found 1 error in 1 file (checked 1 source file)",
        "##[error]Process completed with exit code 1.",
    ]
)
REVIEW_BODY = "Looks right. Please give add() a docstring before I merge."
REVIEW_COMMENT = ("calc.py", 1, "A one-line docstring here, please.")
DEPLOY_DESCRIPTION = "health check GET /healthz answered 404 after the deploy"


def _edit(path: str, old: str, new: str) -> Turn:
    return Turn.tool_use(
        "str_replace_based_edit_tool",
        {"command": "str_replace", "path": path, "old_str": old, "new_str": new},
    )


def fix_turns() -> list[Turn]:
    """`/shipmate fix` on the issue: plan, run the tests, fix add(), say so."""
    return [
        Turn.text(FIX_PLAN),
        Turn.tool_use("bash", {"command": "python3 -m unittest -q 2>&1 | tail -3"}),
        _edit("calc.py", "a - b", "a + b"),
        Turn.text("add() subtracted instead of adding; it adds now and the test passes."),
    ]


def repair_turns() -> list[Turn]:
    """CI's type check failed on the pull request: annotate add()."""
    return [
        Turn.text("1. Read the CI failure.\n2. Annotate add()."),
        _edit("calc.py", "def add(a, b):", "def add(a: float, b: float) -> float:"),
        Turn.text("CI's mypy wanted annotations on add(); added them."),
    ]


def revision_turns() -> list[Turn]:
    """The review asked for a docstring."""
    return [
        Turn.text("1. Add the docstring the review asks for."),
        _edit("calc.py", "-> float:\n", '-> float:\n    """The sum of a and b."""\n'),
        Turn.text("Added the docstring."),
    ]


HEALTHZ = (
    '"""The health check the deploy probes."""\n\n\n'
    "def healthz() -> dict[str, str]:\n"
    '    return {"status": "ok"}\n'
)


def follow_up_turns() -> list[Turn]:
    """The deploy's health check found no /healthz: add one."""
    create: dict[str, Any] = {"command": "create", "path": "healthz.py", "file_text": HEALTHZ}
    return [
        Turn.text("1. Read the failed health check.\n2. Add the /healthz handler."),
        Turn.tool_use("str_replace_based_edit_tool", create),
        Turn.text("The deploy probes /healthz, which did not exist; added it."),
    ]
