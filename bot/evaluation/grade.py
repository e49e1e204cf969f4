"""Grading one task: the candidate commit checked out afresh, the task's `test_patch` applied on
the host (it is the task's own, trusted data), then its tests run in a fresh sandbox. Resolved
when every FAIL_TO_PASS test passes and every PASS_TO_PASS test still does."""

from __future__ import annotations

import re
import shlex
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.evaluation.tasks import EvalTask
from bot.sandbox import Limits, SandboxSpec, open_sandbox
from bot.sandbox.checkout import CheckoutError, git

GRADE_TIMEOUT_SECONDS = 300.0
# pytest's `-rA` summary: one line a test, the outcome first.
SUMMARY_LINE = re.compile(r"^(PASSED|FAILED|ERROR|XPASS|XFAIL|SKIPPED) (\S+)", re.M)


@dataclass(frozen=True)
class Grade:
    resolved: bool
    passed: frozenset[str]
    failed: frozenset[str]
    reason: str = ""


def outcomes_from_summary(output: str) -> dict[str, bool] | None:
    """Test id -> passed, from pytest's `-rA` summary; None when the output has none."""
    found = SUMMARY_LINE.findall(output)
    if not found:
        return None
    return {test_id: outcome in ("PASSED", "XPASS") for outcome, test_id in found}


def judge(task: EvalTask, passed: set[str]) -> Grade:
    wanted = set(task.fail_to_pass) | set(task.pass_to_pass)
    failed = wanted - passed
    reason = ""
    if failed:
        shown = ", ".join(sorted(failed)[:5])
        reason = f"{len(failed)} of {len(wanted)} tests did not pass: {shown}"
    return Grade(not failed, frozenset(passed & wanted), frozenset(failed), reason)


def prepare(repo: Path, commit: str, test_patch: str, into: Path) -> None:
    """A fresh work tree of `commit` with the task's tests added."""
    sha = git("rev-parse", "--verify", f"{commit}^{{commit}}", cwd=repo).strip()
    git("clone", "-q", "--no-checkout", str(repo), str(into))
    git("checkout", "-q", "--detach", sha, cwd=into)
    if test_patch.strip():
        patch_file = into.parent / "test.patch"
        patch_file.write_text(test_patch)
        git("apply", "--whitespace=nowarn", str(patch_file), cwd=into)
        patch_file.unlink()


async def _run_tests(workspace: Path, argv: Sequence[str], seconds: float) -> tuple[int, str]:
    spec = SandboxSpec(workspace=workspace, limits=Limits(timeout_seconds=seconds))
    async with open_sandbox(spec) as sandbox:
        result = await sandbox.exec(
            list(argv), env={"PYTHONDONTWRITEBYTECODE": "1"}, timeout_seconds=seconds
        )
    return result.exit_code, (result.stdout + result.stderr).decode(errors="replace")


async def grade(
    task: EvalTask, repo: Path, commit: str, *, seconds: float = GRADE_TIMEOUT_SECONDS
) -> Grade:
    tests = [*task.fail_to_pass, *task.pass_to_pass]
    with tempfile.TemporaryDirectory(prefix="shipmate-grade-") as tmp:
        workspace = Path(tmp) / "work"
        try:
            prepare(repo, commit, task.test_patch, workspace)
        except CheckoutError as exc:
            return Grade(False, frozenset(), frozenset(tests), f"could not prepare: {exc}")
        command = shlex.split(task.test_cmd)
        _, output = await _run_tests(workspace, [*command, *tests], seconds)
        outcomes = outcomes_from_summary(output)
        if outcomes is None:
            # Not pytest: each test alone, judged by the exit code.
            outcomes = {}
            for test in tests:
                code, _ = await _run_tests(workspace, [*command, test], seconds)
                outcomes[test] = code == 0
    return judge(task, {t for t, ok in outcomes.items() if ok})
