"""GitHub's REST answers read leniently into Shipmate's values: each field by the rule of its
type, null or absent read as "" or None or the field's default, a missing id refused by name."""

from __future__ import annotations

import pytest

from bot.github.models import CheckRun, Comment, Job, PullRequest, ReviewComment, WorkflowRun
from bot.github.replies import written_by


def test_a_null_or_absent_field_reads_as_empty_none_or_its_default() -> None:
    run = WorkflowRun.of({"id": "7", "name": None, "head_sha": "abc", "conclusion": None})
    assert run == WorkflowRun(7, "", "abc", None, None, None, "", 0, 1)
    assert WorkflowRun.of({"id": 7, "workflow_id": 12, "run_attempt": 3}).run_attempt == 3


def test_fields_nested_in_the_answer_are_read_by_the_same_rules() -> None:
    answer = {
        "id": 5,
        "name": "tests",
        "status": "completed",
        "output": {"title": "2 failed", "summary": None},
        "app": {"slug": "ci"},
        "check_suite": {"id": "9"},
    }
    run = CheckRun.of(answer)
    assert (run.title, run.summary, run.text) == ("2 failed", None, None)
    assert (run.app_slug, run.check_suite_id, run.head_sha) == ("ci", 9, "")
    pull = PullRequest.of({"number": 3, "head": {"ref": "fix", "repo": None}})
    assert (pull.state, pull.head_ref, pull.head_sha, pull.head_repo) == ("open", "fix", "", None)


def test_a_review_comment_on_an_outdated_line_keeps_its_original_line() -> None:
    comment = ReviewComment.of({"id": 1, "line": None, "original_line": 12, "user": None})
    assert (comment.line, comment.user, comment.in_reply_to_id) == (12, "", None)


def test_a_comment_is_ours_only_by_our_bots_login_and_type() -> None:
    ours = Comment.of({"id": 1, "body": "x", "user": {"login": "shipmate[bot]", "type": "Bot"}})
    assert (ours.user, ours.user_type) == ("shipmate[bot]", "Bot")
    assert written_by(ours, "shipmate[bot]") and not written_by(ours, "other[bot]")
    for user in ({"login": "mallory", "type": "User"}, {"login": "shipmate[bot]"}, None):
        assert not written_by(Comment.of({"id": 2, "body": "x", "user": user}), "shipmate[bot]")


def test_failed_steps_are_kept_as_found() -> None:
    steps = [{"name": "lint", "conclusion": "success"}, {"name": "test", "conclusion": "failure"}]
    assert Job.of({"id": 2, "steps": steps}).failed_steps == ("test",)


def test_an_answer_without_its_id_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match="id"):
        CheckRun.of({"name": "tests"})
    with pytest.raises(KeyError, match="number"):
        PullRequest.of({"number": None})
