"""Whether a payload has the shape of the event its header names (pure).

GitHub's signature covers the body, not the `X-GitHub-Event` header: a captured body sent
again under another event name verifies. So each event Shipmate routes names the top-level
keys its payload always has, and a payload must have them; where one event's keys are a
strict part of another's (`issues` ⊂ `issue_comment`), a payload with the larger set belongs
to the larger event. Events nobody routes are stored as sent (they run nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Set

# The keys each routed event's payload carries (GitHub's webhook schemas, checked against
# the recorded payloads in shared/fixtures/github-webhooks).
REQUIRED: Mapping[str, frozenset[str]] = {
    "issue_comment": frozenset({"action", "comment", "issue"}),
    "issues": frozenset({"action", "issue"}),
    "pull_request": frozenset({"action", "pull_request"}),
    "pull_request_review": frozenset({"action", "review", "pull_request"}),
    "pull_request_review_comment": frozenset({"action", "comment", "pull_request"}),
    "check_run": frozenset({"action", "check_run"}),
    "check_suite": frozenset({"action", "check_suite"}),
    "workflow_run": frozenset({"action", "workflow_run"}),
    "deployment_status": frozenset({"action", "deployment_status", "deployment"}),
    "installation": frozenset({"action", "installation"}),
    "installation_repositories": frozenset(
        {"action", "installation", "repositories_added", "repositories_removed"}
    ),
    "status": frozenset({"sha", "state", "context"}),
    "ping": frozenset({"zen", "hook_id"}),
}


def _larger() -> dict[str, list[tuple[str, frozenset[str]]]]:
    """For each event, the events whose keys strictly contain its own (computed once)."""
    return {
        event: [(other, keys) for other, keys in REQUIRED.items() if keys > required]
        for event, required in REQUIRED.items()
    }


LARGER = _larger()


# Every App delivery has an `installation` ({id, node_id}); only the installation event's is
# the whole installation, with its `app_id`.
INSTALLATION_EVENT_KEY = "app_id"


def shape_mismatch(
    event: str, present: Set[str], installation_keys: Set[str] = frozenset()
) -> str | None:
    """Why a payload with top-level keys `present` (and `installation_keys` in its
    `installation` object) is no `event` delivery, or None."""
    required = REQUIRED.get(event)
    if required is None:
        return None
    missing = sorted(required - present)
    if missing:
        return f"X-GitHub-Event is {event}, but the payload has no {', '.join(missing)}"
    if event == "installation" and INSTALLATION_EVENT_KEY not in installation_keys:
        return "X-GitHub-Event is installation, but the payload's installation has no app_id"
    for other, keys in LARGER[event]:
        if keys <= present:
            return f"X-GitHub-Event is {event}, but the payload is a {other} payload"
    return None
