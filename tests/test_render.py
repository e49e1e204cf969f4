from __future__ import annotations

from dataclasses import replace

from bot.runs.render import Progress, Usage, check_output, marker_key, pr_body, sticky_comment

DIFF = (
    "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n"
    "@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n"
)


def _done() -> Progress:
    return Progress(
        key="octo-widgets-12",
        verb="fix",
        stage="done",
        plan="1. Fix `add`.\n2. Run the tests.",
        diff=DIFF,
        tests_passed=True,
        test_summary="3 passed",
        usage=Usage(1200, 300, 5000, 40000),
        cost_usd=0.1234,
        steps=7,
        sandbox_seconds=12.4,
        pr_url="https://github.com/octo/widgets/pull/13",
    )


def test_sticky_comment_carries_its_marker_and_everything_a_reviewer_needs() -> None:
    body = sticky_comment(_done())
    assert marker_key(body) == "octo-widgets-12"
    assert "✅ Done" in body and "`/shipmate fix`" in body
    assert "1. Fix `add`." in body
    assert "<details><summary>Diff: 1 file, +1 −1</summary>" in body
    assert "+    return a + b" in body
    assert "**Tests** passed." in body
    assert "https://github.com/octo/widgets/pull/13" in body
    assert "$0.12" in body and "40,000 cached" in body


def test_queued_comment_is_short() -> None:
    body = sticky_comment(Progress(key="k", verb="plan", stage="queued"))
    assert body.splitlines()[-1] == "### ⏳ Queued · `/shipmate plan`"


def test_fence_survives_backticks_in_the_content() -> None:
    progress = Progress(
        key="k", verb="fix", stage="failed", tests_passed=False, test_summary="```\nnested\n```"
    )
    assert "````\n```\nnested\n```\n````" in sticky_comment(progress)


def test_pr_body_links_the_issue_and_says_how_it_was_tested() -> None:
    body = pr_body(_done(), issue_number=12)
    assert body.startswith("Fixes #12")
    assert "## Plan" in body and "tests pass" in body and "never merges" in body


def test_pr_body_when_tests_failed_says_draft() -> None:
    progress = Progress(key="k", verb="fix", stage="done", tests_passed=False)
    assert "draft" in pr_body(progress, issue_number=None)
    assert "Fixes #" not in pr_body(progress, issue_number=None)


def test_check_output_title_and_summary() -> None:
    title, summary = check_output(_done())
    assert title == "✅ Done · tests passed"
    assert "1. Fix `add`." in summary and "shipmate:task" not in summary


def test_marker_key_of_other_comments_is_none() -> None:
    assert marker_key("just a comment") is None and marker_key(None) is None


def test_done_never_heads_a_comment_or_check_run_whose_tests_failed() -> None:
    failing = Progress(key="k", verb="fix", stage="done", tests_passed=False, diff=DIFF)
    body = sticky_comment(failing)
    assert "✅" not in body and body.splitlines()[2] == "### ⚠️ Tests failing · `/shipmate fix`"
    assert "**Tests** did not pass." in body
    assert check_output(failing)[0] == "⚠️ Tests failing · tests failed"


def test_no_change_was_needed_only_when_the_tests_pass() -> None:
    def heading(tests_passed: bool | None) -> str:
        progress = Progress(key="k", verb="fix", stage="no_change", tests_passed=tests_passed)
        return sticky_comment(progress).splitlines()[2]

    assert heading(True) == "### ✅ Done: no change was needed · `/shipmate fix`"
    assert heading(False) == "### ❌ No change made, and the tests fail · `/shipmate fix`"
    assert heading(None) == "### ➖ No change made · `/shipmate fix`"  # no test command


def test_a_huge_plan_is_cut_so_github_accepts_the_pull_request() -> None:
    progress = replace(_done(), plan="a" * 200_000, test_summary="x" * 70_000)
    body = pr_body(progress, issue_number=12)
    assert len(body) <= 65_000
    assert body.startswith("Fixes #12") and "(cut: 180,000 more characters)" in body
    assert "(50,000 characters cut)" in body and "## Cost" in body and "never merges" in body
