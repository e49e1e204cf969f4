"""The loop, step by step: each step does what a person (or CI, or a deploy tool) does on
GitHub, waits for Shipmate to finish, and says what Shipmate did, or raises `StepFailed`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.demo import script
from bot.demo.world import SENDER_BOT, World
from standins.github_common import public

BOT = "shipmate[bot]"
ALICE = {"login": "alice", "type": "User"}
CI_SECONDS = 160  # how long the demo's type check ran before it failed


class StepFailed(Exception):
    """Shipmate did not do what the step expected; the message says what is missing."""


@dataclass
class Story:
    """What the loop made so far, for the later steps and the summary."""

    issue: int = 0
    pull: dict[str, Any] = field(default_factory=dict)
    follow_up: dict[str, Any] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    title: str
    run: Callable[[World, Story], str]


def _pulls_by_shipmate(world: World) -> list[dict[str, Any]]:
    pulls = world.gh.state.pulls.values()
    return [p for p in pulls if p["user"]["login"] == BOT]


def _pushes(world: World) -> list[dict[str, Any]]:
    return [p for p in world.gh.state.pushes if p["pusher"] == BOT]


def _last_push_after(world: World, count: int, what: str) -> str:
    pushes = _pushes(world)
    if len(pushes) <= count:
        raise StepFailed(f"Shipmate pushed no {what}")
    return str(pushes[-1]["new"])


def _pull_event(world: World, action: str, pull: dict[str, Any], sender: dict[str, Any]) -> None:
    """What GitHub delivers when a pull request is opened or closed (the ledger's record)."""
    shown = public(world.gh.state.pulls[(script.REPO, pull["number"])])
    world.emit(
        "pull_request", action, {"number": shown["number"], "pull_request": shown, "sender": sender}
    )


def open_issue(world: World, story: Story) -> str:
    issue = world.gh.create_issue(script.REPO, script.ISSUE_TITLE, script.ISSUE_BODY, "alice")
    story.issue = issue["number"]
    return f'alice opened issue #{issue["number"]} "{script.ISSUE_TITLE}"'


def ask_for_a_fix(world: World, story: Story) -> str:
    world.script(script.fix_turns())
    body = "Could you take this one?\n/shipmate fix"
    made = world.gh.create_comment(script.REPO, story.issue, body, "alice")
    alice = ALICE
    issue = {"number": story.issue, "title": script.ISSUE_TITLE, "body": script.ISSUE_BODY}
    world.emit(
        "issue_comment",
        "created",
        {
            "comment": {"id": made["id"], "body": body, "user": alice},
            "issue": issue,
            "sender": alice,
        },
    )
    world.settle()
    pulls = _pulls_by_shipmate(world)
    if not pulls:
        raise StepFailed("Shipmate opened no pull request for the issue")
    story.pull = pulls[-1]
    story.commits.append(story.pull["head"]["sha"])
    _pull_event(world, "opened", story.pull, {"login": BOT, "type": "Bot"})
    world.settle()
    return f"Shipmate opened pull request #{story.pull['number']}: {story.pull['html_url']}"


def fail_ci(world: World, story: Story) -> str:
    world.script(script.repair_turns())
    pushed = len(_pushes(world))
    head_sha, head_ref = story.pull["head"]["sha"], story.pull["head"]["ref"]
    run = world.gh.create_workflow_run(
        script.REPO,
        name="CI",
        head_sha=head_sha,
        head_branch=head_ref,
        jobs=[{"name": "typecheck", "conclusion": "failure", "log": script.CI_LOG}],
    )
    mentioned = [{"number": story.pull["number"], "head": {"ref": head_ref, "sha": head_sha}}]
    (job,) = [j for j in world.gh.state.jobs.values() if j.get("run_id") == run["id"]]
    started = datetime.fromisoformat(job["completed_at"].replace("Z", "+00:00"))
    job["started_at"] = (started - timedelta(seconds=CI_SECONDS)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _emit_ci(world, run, job, mentioned)
    world.settle()
    commit = _last_push_after(world, pushed, "repair commit after the failed CI")
    story.commits.append(commit)
    return f"CI failed; Shipmate pushed repair commit {commit[:7]} to {head_ref}"


def _emit_ci(world: World, run: dict[str, Any], job: dict[str, Any], mentioned: Any) -> None:
    """What GitHub delivers for one failed Actions run: the job's check run, the suite, the run."""
    head = {"head_sha": run["head_sha"], "conclusion": "failure", "status": "completed"}
    actions = {"app": {"slug": "github-actions"}, "pull_requests": mentioned}
    check_run = {"id": job["id"], "name": job["name"], **head, **actions}
    check_run["output"] = {"title": "typecheck failure", "summary": "", "text": None}
    world.emit("check_run", "completed", {"check_run": check_run, "sender": SENDER_BOT})
    suite = {"id": run["check_suite_id"], "head_branch": run["head_branch"], **head, **actions}
    world.emit("check_suite", "completed", {"check_suite": suite, "sender": SENDER_BOT})
    world.emit("workflow_run", "completed", {"workflow_run": run, "sender": SENDER_BOT})
    world.emit("workflow_job", "completed", {"workflow_job": public(job), "sender": SENDER_BOT})


def request_changes(world: World, story: Story) -> str:
    world.script(script.revision_turns())
    pushed = len(_pushes(world))
    number = story.pull["number"]
    review = world.gh.add_review(
        script.REPO,
        number,
        "alice",
        "changes_requested",
        script.REVIEW_BODY,
        [script.REVIEW_COMMENT],
    )
    pull = public(world.gh.state.pulls[(script.REPO, number)])
    shown = {"pull_request": pull, "sender": ALICE}
    world.emit("pull_request_review", "submitted", {"review": public(review), **shown})
    for comment in world.gh.state.review_comments.values():
        if comment.get("pull_request_review_id") == review["id"]:
            world.emit(
                "pull_request_review_comment", "created", {"comment": public(comment), **shown}
            )
    world.settle()
    commit = _last_push_after(world, pushed, "revision after the review")
    story.commits.append(commit)
    return f"alice asked for a docstring; Shipmate pushed revision {commit[:7]} and replied"


def fail_deploy(world: World, story: Story) -> str:
    world.script(script.follow_up_turns())
    number = story.pull["number"]
    merged = world.gh.merge_pull(script.REPO, number)
    _pull_event(world, "closed", story.pull, {"login": "octocat", "type": "User"})
    deployment = world.gh.create_deployment(script.REPO, ref="main", sha=merged)
    status = world.gh.add_deployment_status(
        script.REPO, deployment["id"], state="failure", description=script.DEPLOY_DESCRIPTION
    )
    world.emit(
        "deployment_status",
        None,
        {
            "deployment": deployment,
            "deployment_status": status,
            "sender": {"login": "deploy-bot", "type": "User"},
        },
    )
    world.settle()
    later = [p for p in _pulls_by_shipmate(world) if p["number"] > number]
    if not later:
        raise StepFailed(f"Shipmate opened no follow-up after the failed deploy of #{number}")
    story.follow_up = later[-1]
    _pull_event(world, "opened", story.follow_up, {"login": BOT, "type": "Bot"})
    world.settle()
    return (
        f"alice merged #{number}; its deploy failed its health check; Shipmate opened "
        f"follow-up #{story.follow_up['number']}: {story.follow_up['html_url']}"
    )


STEPS = (
    Step("An issue", open_issue),
    Step("/shipmate fix", ask_for_a_fix),
    Step("CI fails on the pull request", fail_ci),
    Step("A review asks for a change", request_changes),
    Step("The deploy's health check fails", fail_deploy),
)
