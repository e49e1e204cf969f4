"""End to end from GitHub: a delivery from the emitter -> the real server -> queue -> worker ->
handler -> run job -> sandbox -> agent (model stand-in) -> git push and REST calls recorded by
the GitHub stand-in."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.agent.model import AnthropicModel
from bot.app import job_handlers
from bot.config import Settings
from bot.db.store import Store
from bot.github.client import PUSH, GitHubApp
from bot.github.replies import unmarked
from bot.intake.app import create_app
from bot.jobs.sql import SQLQueue
from bot.jobs.worker import Worker
from bot.runs.job import RunDeps
from bot.sandbox.checkout import CheckoutCache
from handlers import router
from standins.anthropic import MessagesStandIn, Turn
from standins.github import GitHubStandIn
from tests.dbs import migrate_all
from tests.scripts import edit_add
from tests.servers import running

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]
SECRET = "e2e-secret"
REPO = "octo/widgets"
PLAN = "1. Run the tests.\n2. Make add() add.\n3. Run them again."


@dataclass
class World:
    gh: GitHubStandIn
    model: MessagesStandIn
    settings: Settings
    store: Store
    queue: SQLQueue
    base: str
    installation_id: int

    def emit(self, event: str, action: str | None, overrides: dict[str, Any]) -> Any:
        payload = {
            "repository": {
                "full_name": REPO,
                "name": "widgets",
                "owner": {"login": "octo"},
                "default_branch": "main",
            },
            "installation": {"id": self.installation_id},
            **overrides,
        }
        return self.gh.emit(
            event, action, payload, to=f"{self.base}/api/github/webhooks", secret=SECRET
        )

    def review(self, review_id: int, number: int, body: str) -> Any:
        """Alice's review asking for changes on pull request `number`, delivered."""
        return self.emit(
            "pull_request_review",
            "submitted",
            {
                "review": {
                    "id": review_id,
                    "state": "changes_requested",
                    "body": body,
                    "user": {"login": "alice"},
                },
                "pull_request": {"number": number},
                "sender": {"login": "alice", "type": "User"},
            },
        )

    def work(self) -> int:
        deps = RunDeps(
            self.settings,
            self.store,
            GitHubApp(self.settings),
            CheckoutCache(self.settings.data_dir / "cache"),
            model_factory=lambda: AnthropicModel(self.settings.model, max_retries=2),
        )
        worker = Worker(
            self.queue,
            job_handlers(self.settings, self.store, self.queue, router=router, deps=deps),
        )
        return asyncio.run(worker.run_until_idle())

    def label(self, action: str) -> Any:
        """alice adds (`labeled`) or removes (`unlabeled`) the `shipmate:fix` label on issue 1."""
        return self.emit(
            "issues",
            action,
            {
                "label": {"name": "shipmate:fix"},
                "issue": {"number": 1, "title": "add() subtracts", "body": "x"},
                "sender": {"login": "alice", "type": "User"},
            },
        )

    def comment(self, body: str, user: str = "alice", number: int = 1) -> Any:
        made = self.gh.create_comment(REPO, number, body, user)
        return self.emit(
            "issue_comment",
            "created",
            {
                "comment": {
                    "id": made["id"],
                    "body": body,
                    "user": {"login": user, "type": "User"},
                },
                "issue": {"number": number, "title": "add() subtracts", "body": "The tests fail."},
                "sender": {"login": user, "type": "User"},
            },
        )


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with GitHubStandIn(tmp_path / "gh") as gh, MessagesStandIn() as model:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", model.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        app = gh.create_app("shipmate")
        gh.create_repo(
            REPO,
            {
                "calc.py": "def add(a, b):\n    return a - b\n",
                "test_calc.py": "import unittest\nfrom calc import add\n\n\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n",
                ".github/shipmate.yml": "test: python3 -m unittest -q\n",
            },
        )
        # What app.yml asks for: PUSH, and actions: write to re-run flaky jobs.
        installation = gh.install(app, "octo", [REPO], {**PUSH, "actions": "write"})
        gh.add_collaborator(REPO, "alice", "write")
        gh.create_issue(REPO, "add() subtracts", "The tests fail.")
        settings = Settings.load(
            app_id=app.id,
            app_slug="shipmate",
            private_key=app.private_key_pem,
            github_api_url=gh.url,
            webhook_secret=SECRET,
            data_dir=tmp_path / "data",
        )
        store = Store.from_settings(settings)
        migrate_all(store)
        with running(create_app(settings, store, router)) as base:
            yield World(gh, model, settings, store, SQLQueue(store), base, installation.id)
        store.dispose()
        # Every request the product sent is one GitHub's own description accepts.
        assert gh.refused == [] and gh.errors == []


def _fix_script(model: MessagesStandIn) -> None:
    model.script(
        [
            Turn.text(PLAN),
            Turn.tool_use("bash", {"command": "python3 -m unittest -q 2>&1 | tail -1"}),
            edit_add(),
            Turn.text("add() added the wrong way round; fixed. The tests pass."),
        ]
    )


def test_fix_command_opens_a_pull_request(world: World) -> None:
    _fix_script(world.model)
    response = world.comment("Thanks!\n/shipmate fix")
    assert response.status_code == 202
    assert world.work() == 2  # the webhook job, then the run job
    gh = world.gh
    assert [r["content"] for r in gh.state.reactions] == ["eyes"]
    (pull,) = gh.state.pulls.values()
    assert (
        pull["head"]["ref"].startswith("shipmate/1-add-subtracts") and pull["base"]["ref"] == "main"
    )
    assert (
        not pull["draft"]
        and pull["body"].startswith("Fixes #1")
        and PLAN.splitlines()[0] in pull["body"]
    )
    (push,) = gh.state.pushes
    assert (
        push["fast_forward"]
        and push["ref"] == f"refs/heads/{pull['head']['ref']}"
        and push["pusher"] == "shipmate[bot]"
    )
    assert gh.branch_sha(REPO, "main") != push["new"]  # never the default branch
    import subprocess

    shown = subprocess.run(
        ["git", "show", f"{push['new']}:calc.py"],
        cwd=gh.state.repos[REPO].path,
        capture_output=True,
        text=True,
    )
    assert shown.stdout.endswith("return a + b\n")
    (check,) = gh.state.check_runs.values()
    assert (
        check["name"] == "Shipmate"
        and check["conclusion"] == "success"
        and check["head_sha"] == push["new"]
    )
    mine = [c for c in gh.comments_on(REPO, 1) if c["user"]["login"] == "shipmate[bot]"]
    assert len(mine) == 1  # one sticky comment, edited as the task went
    assert (
        "✅ Done" in mine[0]["body"]
        and pull["html_url"] in mine[0]["body"]
        and "$" in mine[0]["body"]
    )
    token_requests = [r for r in gh.requests if r.path.endswith("/access_tokens")]
    assert all(r.body and r.body.get("repositories") == ["widgets"] for r in token_requests)
    assert all("workflows" not in r.body.get("permissions", {}) for r in token_requests)


def test_someone_without_write_access_is_refused_once(world: World) -> None:
    world.comment("/shipmate fix", user="mallory")
    world.comment("/shipmate fix please", user="mallory")
    world.work()
    bodies = _bot_comments(world)
    assert len(bodies) == 1 and "only people with write access" in bodies[0]
    assert world.gh.state.pulls == {} and world.model.requests == []


def test_label_starts_a_fix(world: World) -> None:
    _fix_script(world.model)
    world.label("labeled")
    world.work()
    assert len(world.gh.state.pulls) == 1


def test_help_unknown_verb_stop_and_bots(world: World) -> None:
    world.comment("/shipmate dance")
    world.comment("/shipmate stop")
    world.comment("```\n/shipmate fix\n```")  # in a code block: not a command
    bot_comment = world.gh.create_comment(REPO, 1, "/shipmate fix", "shipmate[bot]")
    world.emit(
        "issue_comment",
        "created",
        {
            "comment": {
                "id": bot_comment["id"],
                "body": "/shipmate fix",
                "user": {"login": "shipmate[bot]", "type": "Bot"},
            },
            "issue": {"number": 1},
            "sender": {"login": "shipmate[bot]", "type": "Bot"},
        },
    )
    world.work()
    replies = [
        unmarked(c["body"])
        for c in world.gh.comments_on(REPO, 1)
        if c["user"]["login"] == "shipmate[bot]" and c["id"] != bot_comment["id"]
    ]
    assert (
        replies[0].startswith("I don't know `/shipmate dance`") and "`/shipmate fix`" in replies[0]
    )
    assert replies[1] == "Nothing is running here."
    assert len(replies) == 2 and world.model.requests == []


def test_plan_posts_a_plan_and_changes_nothing(world: World) -> None:
    world.model.script([Turn.text(PLAN)])
    world.comment("/shipmate plan")
    world.work()
    (sticky,) = _bot_comments(world)
    assert PLAN.splitlines()[1] in sticky
    assert world.gh.state.pulls == {} and world.gh.state.pushes == []


BROKEN = "def add(a, b):\n    return a - b\n"
FIXED_SCRIPT = [
    Turn.text("1. Read the failure.\n2. Fix add()."),
    edit_add(),
    Turn.text("Fixed add()."),
]


def _shipmate_pr(world: World) -> dict[str, Any]:
    world.gh.commit(
        REPO,
        "shipmate/1-add",
        {"calc.py": BROKEN, "notes.txt": "first try\n"},
        "Shipmate's first try",
    )
    return world.gh.create_pull(REPO, "shipmate/1-add", "Fix #1: add()", "shipmate[bot]")


FAILING_LOG = "\n".join(
    ["setup line"] * 300
    + [
        "FAIL: test_add (test_calc.T.test_add)",
        "AssertionError: -1 != 5",
        "FAILED (failures=1)",
    ]
)


def _failing_workflow(world: World, pull: dict[str, Any], name: str = "CI") -> dict[str, Any]:
    """One failed Actions run on the PR's head, as GitHub reports it: workflow_run, check_suite
    and one check_run per job, all delivered. Returns the workflow run."""
    head_sha, head_ref = pull["head"]["sha"], pull["head"]["ref"]
    run = world.gh.create_workflow_run(
        REPO,
        name=name,
        head_sha=head_sha,
        head_branch=head_ref,
        jobs=[{"name": "test", "conclusion": "failure", "log": FAILING_LOG}],
    )
    sender = {"login": "github-actions[bot]", "type": "Bot"}
    mentioned = [
        {"number": pull["number"], "head": {"ref": head_ref, "sha": head_sha}},
    ]
    (job,) = [j for j in world.gh.state.jobs.values() if j.get("run_id") == run["id"]]
    world.emit(
        "check_run",
        "completed",
        {
            "check_run": {
                "id": job["id"],
                "name": "test",
                "head_sha": head_sha,
                "conclusion": "failure",
                "status": "completed",
                "app": {"slug": "github-actions"},
                "pull_requests": mentioned,
                "output": {"title": "test failure", "summary": "", "text": None},
            },
            "sender": sender,
        },
    )
    world.emit(
        "check_suite",
        "completed",
        {
            "check_suite": {
                "id": run["check_suite_id"],
                "head_sha": head_sha,
                "head_branch": head_ref,
                "conclusion": "failure",
                "status": "completed",
                "app": {"slug": "github-actions"},
                "pull_requests": mentioned,
            },
            "sender": sender,
        },
    )
    world.emit("workflow_run", "completed", {"workflow_run": run, "sender": sender})
    return run


def test_failing_ci_on_our_pr_gets_a_follow_up_commit(world: World) -> None:
    pull = _shipmate_pr(world)
    before = pull["head"]["sha"]
    seen: list[str] = []

    def first(request: dict[str, Any]) -> Turn:
        seen.append(request["messages"][0]["content"][0]["text"])
        return FIXED_SCRIPT[0]

    world.model.script([first, *FIXED_SCRIPT[1:]])
    _failing_workflow(world, pull)
    world.work()
    (push,) = world.gh.state.pushes
    assert (
        push["ref"] == "refs/heads/shipmate/1-add"
        and push["old"] == before
        and push["fast_forward"]
    )
    assert pull["head"]["sha"] == push["new"]
    assert "AssertionError: -1 != 5" in seen[0] and "<untrusted-data" in seen[0]
    assert "setup line\nsetup line" not in seen[0]  # the log was cut to the failure
    assert world.gh.state.pulls and len(world.gh.state.pulls) == 1  # no new PR
    # check_run, check_suite and workflow_run of one failure: one run, one attempt.
    assert len(seen) == 1 and len(world.store.runs_for(REPO, pull["number"])) == 1
    attempts = world.store.repair_attempts(REPO, pull["number"], "")
    assert attempts[1] == 1


def test_a_failing_check_suite_of_another_app_gets_one_repair(world: World) -> None:
    pull = _shipmate_pr(world)
    seen = _first_prompts(world, FIXED_SCRIPT)
    output = {
        "title": "build failed",
        "summary": "1 test failed",
        "text": "AssertionError: add(2, 3) returned -1",
    }
    suite = world.gh.create_check_suite(
        REPO,
        head_sha=pull["head"]["sha"],
        head_branch=pull["head"]["ref"],
        app_slug="circle-ci",
        check_runs=[{"name": "build", "conclusion": "failure", "output": output}],
    )
    mentioned = [{"number": pull["number"], "head": dict(pull["head"])}]
    sender = {"login": "circle-ci[bot]", "type": "Bot"}
    world.emit(
        "check_suite",
        "completed",
        {
            "check_suite": {**suite, "pull_requests": mentioned, "app": {"slug": "circle-ci"}},
            "sender": sender,
        },
    )
    world.emit(
        "check_run",
        "completed",
        {
            "check_run": {
                "id": 999999,
                "name": "build",
                "head_sha": pull["head"]["sha"],
                "status": "completed",
                "conclusion": "failure",
                "app": {"slug": "circle-ci"},
                "pull_requests": mentioned,
                "output": output,
            },
            "sender": sender,
        },
    )
    world.work()
    (push,) = world.gh.state.pushes
    assert push["ref"] == "refs/heads/shipmate/1-add" and len(seen) == 1
    assert "AssertionError: add(2, 3) returned -1" in seen[0]
    assert world.store.repair_attempts(REPO, pull["number"], "")[1] == 1


def test_a_failing_commit_status_gets_a_repair(world: World) -> None:
    pull = _shipmate_pr(world)
    seen = _first_prompts(world, FIXED_SCRIPT)
    world.emit(
        "status",
        None,
        {
            "sha": pull["head"]["sha"],
            "state": "failure",
            "context": "ci/lint",
            "description": "lint: calc.py:2 uses a minus",
            "target_url": "https://ci.example/builds/1",
            "branches": [{"name": "shipmate/1-add", "commit": {"sha": pull["head"]["sha"]}}],
            "sender": {"login": "ci-bot", "type": "User"},
        },
    )
    world.work()
    (push,) = world.gh.state.pushes
    assert push["ref"] == "refs/heads/shipmate/1-add"
    assert "lint: calc.py:2 uses a minus" in seen[0] and "ci.example" not in seen[0]


def test_repairs_stop_at_the_attempt_cap(world: World) -> None:
    world.gh.commit(REPO, "main", {".github/shipmate.yml": "max_attempts_per_failure: 1\n"}, "cap")
    pull = _shipmate_pr(world)
    world.model.script(list(FIXED_SCRIPT))
    _failing_workflow(world, pull)
    world.work()
    pull["head"]["sha"] = world.gh.branch_sha(REPO, "shipmate/1-add")
    _failing_workflow(world, pull)
    world.work()
    assert len(world.gh.state.pushes) == 1
    human = [
        c
        for c in world.gh.comments_on(REPO, pull["number"])
        if "A human needs to take it" in c["body"]
    ]
    assert len(human) == 1


def test_a_moved_head_stops_the_repair_without_pushing(world: World) -> None:
    pull = _shipmate_pr(world)

    def human_pushes(request: dict[str, Any]) -> Turn:
        world.gh.commit(REPO, "shipmate/1-add", {"human.txt": "mine\n"}, "a human pushed")
        return Turn.text("Fixed add().")

    world.model.script([*FIXED_SCRIPT[:2], human_pushes])
    _failing_workflow(world, pull)
    world.work()
    pushers = [p["pusher"] for p in world.gh.state.pushes]
    assert "shipmate[bot]" not in pushers
    assert "moved while I worked" in _bot_comments(world, pull["number"])[-1]


def test_failures_on_other_peoples_prs_are_ignored(world: World) -> None:
    world.gh.commit(REPO, "feature", {"calc.py": BROKEN + "# x\n"}, "human work")
    pull = world.gh.create_pull(REPO, "feature", "A human PR", "alice")
    _failing_workflow(world, pull)
    world.work()
    assert world.model.requests == [] and world.gh.state.pushes == []


def test_a_review_becomes_one_revision_run(world: World) -> None:
    pull = _shipmate_pr(world)
    review = world.gh.add_review(
        REPO,
        pull["number"],
        "alice",
        "changes_requested",
        "Please also fix add()",
        [("calc.py", 2, "This subtracts.")],
    )
    seen: list[str] = []

    def first(request: dict[str, Any]) -> Turn:
        seen.append(request["messages"][0]["content"][0]["text"])
        return FIXED_SCRIPT[0]

    world.model.script([first, *FIXED_SCRIPT[1:]])
    world.review(review["id"], pull["number"], "Please also fix add()")
    world.work()
    assert "calc.py:2: This subtracts." in seen[0]
    (push,) = world.gh.state.pushes
    assert push["ref"] == "refs/heads/shipmate/1-add" and push["pusher"] == "shipmate[bot]"
    (asked,) = [
        c for c in world.gh.state.review_comments.values() if c.get("in_reply_to_id") is None
    ]
    (reply,) = [
        c for c in world.gh.state.review_comments.values() if c.get("in_reply_to_id") is not None
    ]
    assert reply["in_reply_to_id"] == asked["id"] and reply["user"]["login"] == "shipmate[bot]"
    assert push["new"][:7] in reply["body"] and "Fixed add()." in reply["body"]


DEPLOY_LOG = "booting\n" * 50 + "RuntimeError: DATABASE_URL is not set\n"


@dataclass
class LogServer:
    """A deploy tool's log server, reachable as 127.0.0.1 (listed) and as localhost (not)."""

    allowed: str
    other: str
    hits: list[str]


@pytest.fixture
def logs() -> Iterator[LogServer]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    hits: list[str] = []

    async def serve(request: Request) -> PlainTextResponse:
        hits.append(request.url.path)
        return PlainTextResponse(DEPLOY_LOG)

    app = Starlette(routes=[Route("/{path:path}", serve)])
    with running(app, lifespan="off") as base:
        yield LogServer(base, base.replace("127.0.0.1", "localhost"), hits)


def _allow_deploy_logs_from_loopback(world: World, extra: str = "") -> None:
    world.gh.commit(
        REPO,
        "main",
        {
            ".github/shipmate.yml": "test: python3 -m unittest -q\n"
            f"deploy_log_hosts: ['127.0.0.1']\n{extra}"
        },
        "deploy logs",
    )


def _deploy_failed(
    world: World, *, ref: str, sha: str, log_url: str = "", target_url: str = ""
) -> Any:
    deployment = world.gh.create_deployment(REPO, ref=ref, sha=sha)
    status = world.gh.add_deployment_status(
        REPO,
        deployment["id"],
        state="failure",
        description="health check /healthz answered 500",
        log_url=log_url,
        target_url=target_url,
    )
    return world.emit(
        "deployment_status",
        None,  # the recorded payloads of this event have no action in their names
        {
            "deployment": deployment,
            "deployment_status": status,
            "sender": {"login": "deploy-bot", "type": "User"},
        },
    )


def _first_prompts(world: World, script: list[Any]) -> list[str]:
    seen: list[str] = []

    def first(request: dict[str, Any]) -> Turn:
        seen.append(request["messages"][0]["content"][0]["text"])
        return script[0]  # type: ignore[no-any-return]

    world.model.script([first, *script[1:]])
    return seen


def test_a_failed_deploy_of_a_merged_shipmate_pr_opens_a_follow_up(
    world: World, logs: LogServer
) -> None:
    _allow_deploy_logs_from_loopback(world)
    pull = _shipmate_pr(world)
    merged = world.gh.merge_pull(REPO, pull["number"])
    seen = _first_prompts(world, FIXED_SCRIPT)
    _deploy_failed(
        world,
        ref="main",
        sha=merged,
        log_url=f"{logs.other}/secret-log",  # not a listed host: the target URL is tried
        target_url=f"{logs.allowed}/deploys/1",
    )
    world.work()
    assert logs.hits == ["/deploys/1"]
    assert "RuntimeError: DATABASE_URL is not set" in seen[0]
    assert "health check /healthz answered 500" in seen[0]
    follow_up = list(world.gh.state.pulls.values())[-1]
    assert follow_up["number"] != pull["number"] and follow_up["base"]["ref"] == "main"
    assert follow_up["title"] == f"Fix the failed production deploy of #{pull['number']}"
    assert follow_up["body"].startswith(f"Follow-up to #{pull['number']}")
    assert world.gh.branch_sha(REPO, "main") == merged  # never pushed to the default branch
    import subprocess

    built_on_merge = subprocess.run(
        ["git", "merge-base", "--is-ancestor", merged, follow_up["head"]["sha"]],
        cwd=world.gh.state.repos[REPO].path,
    )
    assert built_on_merge.returncode == 0


def test_deploy_repairs_are_capped(world: World, logs: LogServer) -> None:
    _allow_deploy_logs_from_loopback(world, "max_attempts_per_failure: 1\n")
    pull = _shipmate_pr(world)
    world.model.script(list(FIXED_SCRIPT))
    _deploy_failed(world, ref=pull["head"]["ref"], sha=pull["head"]["sha"])
    world.work()
    merged = world.gh.merge_pull(REPO, pull["number"])
    _deploy_failed(world, ref="main", sha=merged)
    _deploy_failed(world, ref="main", sha=merged)
    world.work()
    assert len(world.gh.state.pulls) == 2  # the PR and one follow-up
    human = [
        c
        for c in world.gh.comments_on(REPO, pull["number"])
        if "A human needs to take it" in c["body"]
    ]
    assert len(human) == 1 and "deploy to production" in human[0]["body"]


def test_a_failed_deploy_opens_a_follow_up_pull_request(world: World, logs: LogServer) -> None:
    pull = _shipmate_pr(world)
    main_before = world.gh.branch_sha(REPO, "main")
    seen: list[str] = []

    def first(request: dict[str, Any]) -> Turn:
        seen.append(request["messages"][0]["content"][0]["text"])
        return FIXED_SCRIPT[0]

    world.model.script([first, *FIXED_SCRIPT[1:]])
    world.emit(
        "deployment_status",
        None,
        {
            "deployment": {
                "id": 77,
                "ref": "shipmate/1-add",
                "sha": pull["head"]["sha"],
                "environment": "production",
            },
            "deployment_status": {
                "state": "failure",
                "description": "health check /healthz answered 500",
                "log_url": f"{logs.other}/log",
                "target_url": None,
            },
            "sender": {"login": "deploy-bot", "type": "User"},
        },
    )
    world.work()
    assert "health check /healthz answered 500" in seen[0]
    pulls = list(world.gh.state.pulls.values())
    assert (
        len(pulls) == 2
        and pulls[1]["head"]["ref"].startswith("shipmate/")
        and pulls[1]["base"]["ref"] == "main"
    )
    assert world.gh.branch_sha(REPO, "main") == main_before
    assert all(p["ref"] != "refs/heads/main" for p in world.gh.state.pushes)
    assert logs.hits == []  # the log's host is not listed: never fetched


def test_new_repositories_get_a_config_check_naming_the_bad_line(world: World) -> None:
    world.gh.commit(
        REPO, "main", {".github/shipmate.yml": "label: fix\nmax_steps: lots\n"}, "bad config"
    )
    response = world.emit(
        "installation_repositories",
        "added",
        {
            "repositories_added": [{"full_name": REPO, "name": "widgets", "id": 1}],
            "repositories_removed": [],
            "installation": {"id": world.installation_id, "account": {"login": "octo"}},
            "sender": {"login": "alice", "type": "User"},
        },
    )
    assert response.status_code == 202
    world.work()
    (check,) = world.gh.state.check_runs.values()
    assert check["name"] == "Shipmate config" and check["conclusion"] == "failure"
    assert "line 2" in check["output"]["summary"] and "max_steps" in check["output"]["summary"]


def test_fix_on_a_fork_pr_pushes_to_the_base_repository_only(world: World) -> None:
    world.gh.add_collaborator(REPO, "alice", "maintain")
    pull = world.gh.create_fork_pull(
        REPO,
        "stranger/widgets",
        "feature",
        {"feature.txt": "from a fork\n"},
        "Add a feature",
        "stranger",
    )
    _fix_script(world.model)
    made = world.gh.create_comment(REPO, pull["number"], "/shipmate fix", "alice")
    world.emit(
        "issue_comment",
        "created",
        {
            "comment": {
                "id": made["id"],
                "body": "/shipmate fix",
                "user": {"login": "alice", "type": "User"},
            },
            "issue": {
                "number": pull["number"],
                "title": "Add a feature",
                "body": "",
                "pull_request": {"url": "x"},
            },
            "sender": {"login": "alice", "type": "User"},
        },
    )
    world.work()
    pushes = world.gh.state.pushes
    assert pushes and all(
        p["repo"] == REPO and p["ref"].startswith("refs/heads/shipmate/") for p in pushes
    )
    import subprocess

    shown = subprocess.run(
        ["git", "show", f"{pushes[0]['new']}:feature.txt"],
        cwd=world.gh.state.repos[REPO].path,
        capture_output=True,
        text=True,
    )
    assert shown.stdout == "from a fork\n"  # built on the fork's head
    new_pull = list(world.gh.state.pulls.values())[-1]
    assert new_pull["number"] != pull["number"] and new_pull["head"]["ref"].startswith("shipmate/")
    assert (
        world.gh.branch_sha("stranger/widgets", "feature") == pull["head"]["sha"]
    )  # the fork is untouched


def _sticky_stages(world: World, number: int = 1) -> list[str]:
    """The heading of every version of the sticky comment, in order (posted, then edits)."""
    (sticky,) = [
        c
        for c in world.gh.comments_on(REPO, number)
        if c["user"]["login"] == "shipmate[bot]" and "shipmate:task:" in c["body"]
    ]
    bodies = [
        r.body["body"]
        for r in world.gh.requests
        if r.method in ("POST", "PATCH")
        and r.body
        and "shipmate:task:" in str(r.body.get("body"))
        and (r.method == "POST" or r.path.endswith(f"/comments/{sticky['id']}"))
    ]
    headings = [next(x for x in b.splitlines() if x.startswith("### ")) for b in bodies]
    return [h.removeprefix("### ").split(" · ")[0] for h in headings]


def test_the_sticky_shows_each_stage_and_the_plan_as_soon_as_it_is_known(world: World) -> None:
    seen_at_second_call: list[str] = []

    def second(request: dict[str, Any]) -> Turn:
        (sticky,) = _bot_comments(world)
        seen_at_second_call.append(sticky)
        return Turn.tool_use("bash", {"command": "python3 -m unittest -q 2>&1 | tail -1"})

    world.model.script(
        [
            Turn.text(PLAN),
            second,
            edit_add(),
            Turn.text("Fixed."),
        ]
    )
    world.comment("/shipmate fix")
    world.work()
    assert _sticky_stages(world) == [
        "⏳ Queued",
        "🧭 Planning",
        "🛠️ Working",
        "🧪 Running tests",
        "✅ Done",
    ]
    assert "🛠️ Working" in seen_at_second_call[0] and PLAN.splitlines()[1] in seen_at_second_call[0]


def _minted(world: World) -> list[dict[str, str]]:
    return [
        dict(r.body.get("permissions") or {})
        for r in world.gh.requests
        if r.path.endswith("/access_tokens") and r.status == 201
    ]


def test_a_plan_run_never_mints_a_token_that_may_push(world: World) -> None:
    world.model.script([Turn.text(PLAN)])
    world.comment("/shipmate plan")
    world.work()
    minted = _minted(world)
    assert minted and all(
        p.get("contents") != "write" and p.get("workflows") is None for p in minted
    )
    assert {"metadata": "read", "contents": "read", "issues": "read", "pull_requests": "read"} in (
        minted
    )  # reading and the checkout
    assert {"metadata": "read", "issues": "write", "pull_requests": "write"} in minted  # sticky


def test_a_fix_run_mints_the_push_token_only_to_push(world: World) -> None:
    _fix_script(world.model)
    world.comment("/shipmate fix")
    world.work()
    writes = [p for p in _minted(world) if p.get("contents") == "write"]
    assert writes == [
        {"metadata": "read", "contents": "write", "pull_requests": "write", "checks": "write"}
    ]


def test_known_secrets_never_reach_github(world: World) -> None:
    pem = world.settings.private_key_pem().strip()
    key_line = pem.splitlines()[1]
    leaky = f"1. Use the webhook secret {SECRET}-value here.\n2. Sign with\n{pem}"
    world.settings.webhook_secret = [SecretStr(SECRET), SecretStr(f"{SECRET}-value")]
    world.model.script(
        [
            Turn.text(leaky),
            edit_add(),
            Turn.text(f"Fixed; the secret was {SECRET}-value."),
        ]
    )
    world.comment("/shipmate fix")
    world.work()
    (pull,) = world.gh.state.pulls.values()
    import subprocess

    message = subprocess.run(
        ["git", "log", "-1", "--format=%B", world.gh.state.pushes[0]["new"]],
        cwd=world.gh.state.repos[REPO].path,
        capture_output=True,
        text=True,
    ).stdout
    posted = [r.body for r in world.gh.requests if r.method in ("POST", "PATCH") and r.body]
    texts = [message, pull["body"], pull["title"], *map(str, posted)]
    assert "[REDACTED]" in pull["body"] and "[REDACTED]" in message
    assert not any(f"{SECRET}-value" in t or key_line in t for t in texts)
    (transcript,) = (world.settings.data_dir / "runs").glob("*.jsonl")
    kept = transcript.read_text()
    assert "[REDACTED]" in kept and f"{SECRET}-value" not in kept and key_line not in kept


def test_retry_after_a_repair_pushes_to_the_same_pull_request(world: World) -> None:
    pull = _shipmate_pr(world)
    world.model.script(list(FIXED_SCRIPT))
    _failing_workflow(world, pull)
    world.work()
    seen: list[str] = []

    def first(request: dict[str, Any]) -> Turn:
        seen.append(request["messages"][0]["content"][0]["text"])
        return Turn.text("1. Note the retry.")

    world.model.script(
        [
            first,
            Turn.tool_use(
                "str_replace_based_edit_tool",
                {
                    "command": "str_replace",
                    "path": "notes.txt",
                    "old_str": "first try",
                    "new_str": "second try",
                },
            ),
            Turn.text("Noted."),
        ]
    )
    world.comment("/shipmate retry", number=pull["number"])
    world.work()
    assert [p["ref"] for p in world.gh.state.pushes] == ["refs/heads/shipmate/1-add"] * 2
    assert world.gh.state.pushes[1]["old"] == world.gh.state.pushes[0]["new"]  # the new head
    assert len(world.gh.state.pulls) == 1
    assert "AssertionError: -1 != 5" in seen[0]  # the same task, with the same CI log


def _maintainer_pushes_a_workflow(world: World, tmp_path: Path) -> None:
    """A person (not an App) may push workflows; the stand-in's helper pushes as an App would."""
    import os
    import subprocess

    work = tmp_path / "maintainer"
    env = {**os.environ, "STANDIN_WORKFLOWS": "write"}
    subprocess.run(
        ["git", "clone", "-q", str(world.gh.state.repos[REPO].path), str(work)], check=True
    )
    (work / ".github" / "workflows").mkdir(parents=True)
    (work / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    (work / ".github" / "shipmate.yml").write_text(
        "test: python3 -m unittest -q\nprotected_paths: []\n"
        "allow_paths: ['.github/workflows/**', '.github/**']\n"
    )
    for args in (
        ["add", "-A"],
        ["-c", "user.name=m", "-c", "user.email=m@x", "commit", "-qm", "open everything"],
        ["push", "-q", "origin", "HEAD:refs/heads/main"],
    ):
        subprocess.run(["git", *args], cwd=work, env=env, check=True)


def test_workflows_stay_protected_whatever_the_config_says(world: World, tmp_path: Path) -> None:
    _maintainer_pushes_a_workflow(world, tmp_path)
    world.model.script(
        [
            Turn.text("1. Change CI."),
            Turn.tool_use(
                "str_replace_based_edit_tool",
                {
                    "command": "str_replace",
                    "path": ".github/workflows/ci.yml",
                    "old_str": "on: push",
                    "new_str": "on: [push, pull_request]",
                },
            ),
            Turn.text("Changed CI."),
        ]
    )
    world.comment("/shipmate fix")
    world.work()
    assert world.gh.state.pushes == [] and world.gh.state.pulls == {}
    (sticky,) = _bot_comments(world)
    assert "Held back" in sticky and ".github/workflows/ci.yml" in sticky


def _meanwhile(world: World, *events: Any) -> Any:
    """A model turn during which people act on the thread: each event is delivered and a
    second worker handles it while the run is under way; then the model asks to edit a file."""

    def turn(request: dict[str, Any]) -> Turn:
        for event in events:
            event()
        helper = threading.Thread(target=world.work)
        helper.start()
        helper.join(60)
        return edit_add()

    return turn


def _bot_comments(world: World, number: int = 1) -> list[str]:
    return [
        unmarked(c["body"])
        for c in world.gh.comments_on(REPO, number)
        if c["user"]["login"] == "shipmate[bot]"
    ]


def test_stop_cancels_a_running_task_and_nothing_is_pushed(world: World) -> None:
    world.model.script(
        [
            Turn.text(PLAN),
            _meanwhile(
                world,
                lambda: world.comment("/shipmate status"),
                lambda: world.comment("/shipmate fix"),
                lambda: world.comment("/shipmate fix\n/shipmate stop"),
            ),
            Turn.text("Fixed."),  # never asked for: the run stops first
        ]
    )
    world.comment("/shipmate fix")
    world.work()
    assert world.gh.state.pushes == [] and world.gh.state.pulls == {}
    assert len(world.model.requests) == 2
    said = _bot_comments(world)
    assert any(s.startswith("A task (`fix`) is running: 1 model call so far") for s in said)
    busy = "I'm already working on this. Comment `/shipmate stop` to cancel it."
    assert said.count(busy) == 1  # the plain fix; the comment with fix and stop only stops
    assert said.count("Stopping the task.") == 1
    (sticky,) = [s for s in said if "shipmate:task:" in s]
    assert "⏹️ Stopped" in sticky and "cancelled" in sticky
    (run,) = world.store.runs_for(REPO, 1)
    assert run["status"] == "stopped"


def test_removing_the_label_stops_a_running_task(world: World) -> None:
    unlabel = _meanwhile(world, lambda: world.label("unlabeled"))
    world.model.script([Turn.text(PLAN), unlabel, Turn.text("Fixed.")])
    world.comment("/shipmate fix")
    world.work()
    assert world.gh.state.pushes == [] and len(world.model.requests) == 2
    assert "Stopping the task." in _bot_comments(world)


def test_removing_the_label_when_nothing_runs_says_nothing(world: World) -> None:
    world.label("unlabeled")
    world.work()
    assert _bot_comments(world) == []


def test_failing_tests_open_a_draft_pull_request(world: World) -> None:
    world.model.script(
        [
            Turn.text("1. Change add()."),
            edit_add("a * b"),
            Turn.text("Changed add()."),
        ]
    )
    world.comment("/shipmate fix")
    world.work()
    (pull,) = world.gh.state.pulls.values()
    assert pull["draft"] and "did **not** pass" in pull["body"]
    (check,) = [c for c in world.gh.state.check_runs.values() if c["name"] == "Shipmate"]
    assert check["conclusion"] == "failure"


def test_repairs_stop_at_the_per_pull_request_cap(world: World) -> None:
    world.gh.commit(REPO, "main", {".github/shipmate.yml": "max_attempts_per_pr: 1\n"}, "cap")
    pull = _shipmate_pr(world)
    world.model.script(list(FIXED_SCRIPT))
    _failing_workflow(world, pull)
    world.work()
    pull["head"]["sha"] = world.gh.branch_sha(REPO, "shipmate/1-add")
    _failing_workflow(world, pull, name="Lint")
    world.work()
    assert len(world.gh.state.pushes) == 1
    (human,) = [b for b in _bot_comments(world, pull["number"]) if "A human needs" in b]
    assert "`Lint`" in human and "1 per pull request" in human


def test_apply_carries_out_the_plan_and_status_reports_the_cost(world: World) -> None:
    world.model.script([Turn.text(PLAN)])
    world.comment("/shipmate plan")
    world.work()
    seen = _first_prompts(world, FIXED_SCRIPT)
    world.comment("/shipmate apply")
    world.work()
    assert PLAN.splitlines()[1] in seen[0] and len(world.gh.state.pulls) == 1
    world.comment("/shipmate status")
    world.work()
    assert _bot_comments(world)[-1].startswith("The last task (`fix`) ended `completed`; it cost $")


def test_the_refusal_is_said_once_per_thread_whoever_asks(world: World) -> None:
    world.comment("/shipmate fix", user="mallory")
    world.comment("/shipmate fix", user="trudy")
    world.work()
    said = _bot_comments(world)
    assert len(said) == 1 and "only people with write access" in said[0]
    assert world.model.requests == []


def test_plan_then_apply_on_a_pull_request_builds_on_its_head(world: World) -> None:
    world.gh.commit(REPO, "feature", {"feature.txt": "a human's work\n"}, "human work")
    pull = world.gh.create_pull(REPO, "feature", "A feature", "alice")

    def on_pull(body: str) -> Any:
        made = world.gh.create_comment(REPO, pull["number"], body, "alice")
        return world.emit(
            "issue_comment",
            "created",
            {
                "comment": {"id": made["id"], "body": body, "user": {"login": "alice"}},
                "issue": {
                    "number": pull["number"],
                    "title": "A feature",
                    "pull_request": {"url": "x"},
                },
                "sender": {"login": "alice", "type": "User"},
            },
        )

    world.model.script([Turn.text(PLAN)])
    on_pull("/shipmate plan")
    world.work()
    seen = _first_prompts(world, FIXED_SCRIPT)
    on_pull("/shipmate apply")
    world.work()
    assert PLAN.splitlines()[1] in seen[0]
    (push,) = world.gh.state.pushes
    import subprocess

    shown = subprocess.run(
        ["git", "show", f"{push['new']}:feature.txt"],
        cwd=world.gh.state.repos[REPO].path,
        capture_output=True,
        text=True,
    )
    assert shown.stdout == "a human's work\n"  # built on the PR's head, not on main
    assert world.gh.branch_sha(REPO, "feature") == pull["head"]["sha"]
