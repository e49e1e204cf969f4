"""Intake attacks of issue 13 against a real `shipmate serve`: GitHub's signature covers the
body only, so a captured body is sent again under a new X-GitHub-Delivery or another
X-GitHub-Event; and a body whose keys repeat reads differently to different parsers."""

from __future__ import annotations

import json
import sqlite3

from tests.adversarial.intake_harness import Served, served
from tests.conftest import WEBHOOK_FIXTURES

__all__ = ["served"]
COMMENT = (WEBHOOK_FIXTURES / "issue_comment" / "created.payload.json").read_bytes()
LABELED = (WEBHOOK_FIXTURES / "issues" / "labeled.payload.json").read_bytes()


def _stored(data_dir: object) -> list[tuple[str, str]]:
    with sqlite3.connect(f"{data_dir}/shipmate.db") as db:
        return db.execute(
            "SELECT delivery_id, event FROM deliveries ORDER BY received_at"
        ).fetchall()


def test_a_body_replayed_under_a_new_delivery_id_is_a_duplicate(served: Served) -> None:
    first = served.post("issue_comment", COMMENT, "first")
    assert first.status_code == 202 and first.json()["status"] == "queued"
    again = served.post("issue_comment", COMMENT, "second")
    assert again.status_code == 200 and again.json() == {
        "status": "duplicate",
        "delivery": "second",
    }
    # GitHub's own redelivery (the same id) stays a duplicate too.
    redelivered = served.post("issue_comment", COMMENT, "first")
    assert redelivered.status_code == 200 and redelivered.json()["status"] == "duplicate"
    assert _stored(served.data) == [("first", "issue_comment")]


def test_a_body_under_another_event_name_is_refused(served: Served) -> None:
    # Sent first as another event, so no earlier copy could make it a duplicate.
    as_issues = served.post("issues", COMMENT)
    assert as_issues.status_code == 400
    assert "issue_comment payload" in as_issues.json()["error"]
    as_comment = served.post("issue_comment", LABELED)
    assert as_comment.status_code == 400 and "no comment" in as_comment.json()["error"]
    as_installation = served.post("installation", COMMENT)
    assert as_installation.status_code == 400
    assert _stored(served.data) == []
    # An event nobody routes is stored as sent (it runs nothing).
    assert served.post("push", COMMENT).json()["status"] == "ignored"


def test_a_body_with_a_repeated_key_is_refused(served: Served) -> None:
    payload = json.loads(COMMENT)
    text = json.dumps(payload)
    twice = text.replace('"action": "created"', '"action": "created", "action": "deleted"', 1)
    refused = served.post("issue_comment", twice.encode())
    assert refused.status_code == 400
    assert "repeats the key 'action'" in refused.json()["error"]
    nested = text.replace('"login": ', '"login": "mallory", "login": ', 1)
    refused = served.post("issue_comment", nested.encode())
    assert refused.status_code == 400 and "'login'" in refused.json()["error"]
    # Past simdjson's 64-bit integers the standard library decides, and refuses the same.
    big = twice.replace('"action"', '"n": 123456789012345678901234567890, "action"', 1)
    refused = served.post("issue_comment", big.encode())
    assert refused.status_code == 400 and "'action'" in refused.json()["error"]
    assert _stored(served.data) == []
    # The same body without the repeat is a delivery like any other.
    assert served.post("issue_comment", text.encode()).status_code == 202
