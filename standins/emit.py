"""`python -m standins.emit`: send a running Shipmate one signed GitHub event by hand, built on
a recorded payload (../shared/fixtures/github-webhooks/) as the GitHub stand-in's emitter does.

    python -m standins.emit comment --to URL --secret S --issue 1 --body '/shipmate fix'
    python -m standins.emit label --to URL --secret S --issue 1
    python -m standins.emit review --to URL --secret S --pull 2 --body 'Add a docstring'
    python -m standins.emit ci-failure --to URL --secret S --pull 2 --head-sha SHA
    python -m standins.emit deploy-failure --to URL --secret S --sha SHA --ref shipmate/1-x

Prints Shipmate's answer (status and JSON). Exit 0 on a 2xx."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import random
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from standins import webhook_payloads as payloads
from standins.github import FIXTURES


def _comment(args: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    user = {"login": args.user, "type": "User"}
    comment = {"id": random.randint(10**6, 10**9), "body": args.body, "user": user}
    issue = {"number": args.issue, "title": args.title, "body": ""}
    return "issue_comment", "created", {"comment": comment, "issue": issue}


def _label(args: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    issue = {"number": args.issue, "title": args.title, "body": ""}
    return "issues", "labeled", {"label": {"name": args.name}, "issue": issue}


def _review(args: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    review = {"id": random.randint(10**6, 10**9), "state": args.state, "body": args.body}
    review["user"] = {"login": args.user, "type": "User"}
    return (
        "pull_request_review",
        "submitted",
        {"review": review, "pull_request": {"number": args.pull}},
    )


def _ci_failure(args: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    run = {
        "id": random.randint(10**6, 10**9),
        "name": args.name,
        "conclusion": "failure",
        "status": "completed",
        "head_sha": args.head_sha,
        "pull_requests": [{"number": args.pull}],
    }
    return "workflow_run", "completed", {"workflow_run": run}


def _deploy_failure(args: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    deployment = {"id": random.randint(10**6, 10**9), "sha": args.sha, "ref": args.ref}
    status = {"state": "failure", "description": args.description, "log_url": args.log_url}
    return (
        "deployment_status",
        "created",
        {
            "deployment": deployment,
            "deployment_status": status,
        },
    )


KINDS = {
    "comment": _comment,
    "label": _label,
    "review": _review,
    "ci-failure": _ci_failure,
    "deploy-failure": _deploy_failure,
}


def signed(event: str, body: bytes, secret: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/standin",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256="
        + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


def build(args: argparse.Namespace) -> tuple[str, bytes]:
    """The event's name and its body: the recorded payload, reshaped, with the kind's fields."""
    event, action, fields = KINDS[args.kind](args)
    # deployment_status is recorded without an action in its file names.
    fixture = "payload.json" if event == "deployment_status" else None
    payload = payloads.recorded(FIXTURES, event, None if fixture else action, fixture)
    payloads.reshape(payload, repo=args.repo, sender=args.user, installation_id=args.installation)
    payloads.merge(payload, fields)
    return event, json.dumps(payload).encode()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m standins.emit", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="kind", required=True)
    for kind in KINDS:
        one = sub.add_parser(kind)
        one.add_argument("--to", required=True, help="Shipmate's webhook URL")
        one.add_argument("--secret", required=True, help="the webhook secret")
        one.add_argument("--repo", default="octo/widgets")
        one.add_argument("--installation", type=int, default=None, help="installation id")
        one.add_argument("--user", default="alice", help="who did it")
        one.add_argument("--issue", type=int, default=1)
        one.add_argument("--title", default="add() subtracts")
        one.add_argument("--body", default="/shipmate fix")
        one.add_argument("--name", default="shipmate:fix" if kind == "label" else "CI")
        one.add_argument("--pull", type=int, default=2)
        one.add_argument("--state", default="changes_requested")
        one.add_argument("--head-sha", default="0" * 40)
        one.add_argument("--sha", default="0" * 40)
        one.add_argument("--ref", default="main")
        one.add_argument("--description", default="health check failed")
        one.add_argument("--log-url", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    event, body = build(args)
    answer = httpx.post(args.to, content=body, headers=signed(event, body, args.secret), timeout=30)
    print(answer.status_code, answer.text)
    return 0 if answer.is_success else 1


if __name__ == "__main__":
    sys.exit(main())
