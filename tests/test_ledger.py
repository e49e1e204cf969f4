"""The ledger of a change, from real payload shapes (octokit's recorded webhooks, MIT): two
runs, CI jobs (Actions' workflow_job and another app's check run), a review and comments, a
merge; `shipmate report --json` against figures worked out by hand; monthly budgets."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from bot.config import Settings, parse_repo_config
from bot.db.deliveries import Delivery
from bot.db.ledger import month_start
from bot.db.store import Store
from bot.jobs.sql import SQLQueue
from bot.runs.budgets import MonthlyCaps, monthly_caps, over_budget
from bot.runs.costs import Rates
from bot.runs.report import build_report, load_ledgers
from bot.triggers.context import Context
from handlers import ledger as ledger_handlers
from standins.anthropic import Turn
from tests.conftest import WEBHOOK_FIXTURES
from tests.dbs import migrate_all
from tests.scripts import edit_add
from tests.test_e2e_github import World
from tests.test_e2e_github import world as world

ROOT = Path(__file__).resolve().parent.parent
REPO = "octo/widgets"
BRANCH = "shipmate/1-add-subtracts"
BOT = {"login": "shipmate[bot]", "type": "Bot"}
ALICE = {"login": "alice", "type": "User"}
DEC_1 = 1796119200.0  # 2026-12-01T10:00:00Z


def fixture(event: str, name: str) -> dict[str, Any]:
    return json.loads((WEBHOOK_FIXTURES / event / name).read_text())


def context(store: Store, event: str, payload: dict[str, Any]) -> Context:
    return Context(
        event=event,
        action=payload.get("action"),
        delivery_id="d",
        payload=payload,
        installation_id=1,
        repository=REPO,
        log=structlog.get_logger(),
        settings=Settings.load(app_slug="shipmate"),
        store=store,
        queue=SQLQueue(store),
    )


async def deliver(store: Store, event: str, payload: dict[str, Any]) -> None:
    await ledger_handlers.router.dispatch(context(store, event, payload))


def ours(pull: dict[str, Any], number: int = 7) -> dict[str, Any]:
    pull = copy.deepcopy(pull)
    pull.update(number=number, user=BOT)
    pull["head"]["ref"] = BRANCH
    return pull


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate_all(store)
    return store


async def play_a_change(store: Store, tmp_path: Path) -> None:
    """Two runs of one change, its CI, a review with comments, and the merge."""
    transcript = tmp_path / "t.jsonl"
    transcript.write_bytes(b"x" * 2048)
    for run_id, cost, wall in (("r1", 0.30, 120.0), ("r2", 0.10, 60.0)):
        store.record_run(
            run_id,
            repo=REPO,
            number=1,
            kind="fix",
            branch=BRANCH,
            status="completed",
            cost_usd=cost,
            input_tokens=1000,
            output_tokens=200,
            sandbox_wall_seconds=wall,
            sandbox_cpu_seconds=wall / 2,
            transcript_path=str(transcript),
            created_at=DEC_1,
        )
    opened = fixture("pull_request", "opened.payload.json")
    opened["pull_request"] = ours(opened["pull_request"])
    opened["pull_request"]["created_at"] = "2026-12-01T10:00:00Z"
    await deliver(store, "pull_request", opened)
    job = fixture("workflow_job", "completed.failure.with-organization.payload.json")
    job["workflow_job"].update(
        head_branch=BRANCH, started_at="2026-12-01T10:01:00Z", completed_at="2026-12-01T10:04:00Z"
    )
    await deliver(store, "workflow_job", job)
    await deliver(store, "workflow_job", job)  # a redelivery counts once
    other = fixture("workflow_job", "completed.success.with-organization.payload.json")
    other["workflow_job"].update(
        id=99,
        head_branch=BRANCH,
        started_at="2026-12-01T10:10:00Z",
        completed_at="2026-12-01T10:12:00Z",
    )
    await deliver(store, "workflow_job", other)
    check = fixture("check_run", "completed.payload.json")
    check["check_run"]["app"]["slug"] = "circleci"
    check["check_run"]["check_suite"]["head_branch"] = BRANCH
    check["check_run"].update(
        started_at="2026-12-01T10:00:00Z", completed_at="2026-12-01T10:01:00Z"
    )
    await deliver(store, "check_run", check)
    unrelated = copy.deepcopy(other)
    unrelated["workflow_job"].update(id=100, head_branch="main")
    await deliver(store, "workflow_job", unrelated)  # not a Shipmate branch
    review = fixture("pull_request_review", "submitted.payload.json")
    review["pull_request"] = ours(review["pull_request"])
    review["review"].update(user=ALICE, submitted_at="2026-12-01T12:00:00Z")
    await deliver(store, "pull_request_review", review)
    bot_review = copy.deepcopy(review)
    bot_review["review"].update(id=5, user=BOT)
    await deliver(store, "pull_request_review", bot_review)  # not a human
    comment = fixture("pull_request_review_comment", "created.payload.json")
    comment["pull_request"] = ours(comment["pull_request"])
    comment["comment"]["user"] = ALICE
    await deliver(store, "pull_request_review_comment", comment)
    talk = fixture("issue_comment", "created.payload.json")
    talk["issue"].update(number=7, pull_request={"url": "x"})
    talk["comment"]["user"] = ALICE
    await deliver(store, "issue_comment", talk)
    closed = fixture("pull_request", "closed.payload.json")
    closed["pull_request"] = ours(closed["pull_request"])
    closed["pull_request"].update(merged=True, merged_at="2026-12-02T10:00:00Z")
    await deliver(store, "pull_request", closed)


@pytest.mark.anyio
async def test_the_ledger_of_a_pull_request_with_two_runs_ci_and_a_review(
    store: Store, tmp_path: Path
) -> None:
    await play_a_change(store, tmp_path)
    (ledger,) = load_ledgers(store, None, 0)
    assert (ledger.repo, ledger.number, ledger.branch, ledger.runs) == (REPO, 7, BRANCH, 2)
    assert ledger.tokens["input_tokens"] == 2000 and ledger.model_usd == pytest.approx(0.40)
    assert ledger.sandbox_wall_seconds == 180 and ledger.sandbox_cpu_seconds == 90
    assert ledger.ci_jobs == 3 and ledger.ci_minutes == pytest.approx(3 + 2 + 1)
    assert (ledger.review_rounds, ledger.human_comments) == (1, 2)
    assert ledger.hours_to_first_review() == pytest.approx(2.0)
    assert ledger.hours_to_close() == pytest.approx(24.0) and ledger.merged
    assert ledger.storage_bytes == 2 * 2048  # both runs' transcripts
    costs = ledger.dollars(
        Rates(
            sandbox_usd_per_hour=1.2,
            ci_usd_per_minute=0.01,
            engineer_hourly_usd=60,
            review_minutes_per_round=10,
        )
    )
    assert costs == pytest.approx(
        {"model": 0.40, "sandbox": 0.06, "ci": 0.06, "review": 10.0, "total": 10.52}
    )


@pytest.mark.anyio
async def test_report_json_matches_a_hand_computed_case(store: Store, tmp_path: Path) -> None:
    await play_a_change(store, tmp_path)
    env = {
        "PATH": "/usr/bin:/bin",
        "SHIPMATE_DATABASE_URL": str(store.engine.url),
        "SHIPMATE_DATA_DIR": str(tmp_path / "data"),
        "SHIPMATE_SANDBOX_USD_PER_HOUR": "1.2",
        "SHIPMATE_CI_USD_PER_MINUTE": "0.01",
        "SHIPMATE_ENGINEER_HOURLY_USD": "60",
        "SHIPMATE_ENGINEER_MINUTES_PER_CHANGE": "120",
        "SHIPMATE_REVIEW_MINUTES_PER_ROUND": "10",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "report", "--json", "--since", "2026-11-01"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # By hand: model 0.30 + 0.10; sandbox 180 s at $1.20/h = 0.06; CI 6 min at 1 cent = 0.06;
    # review 1 round x 10 min at $60/h = 10.00; total 10.52. An engineer: 2 h x $60 = 120.
    assert report["runs"] == 2 and report["prs_opened"] == 1 and report["prs_merged"] == 1
    assert report["per_merged_change_usd"] == pytest.approx(
        {"model": 0.40, "sandbox": 0.06, "ci": 0.06, "review": 10.0, "total": 10.52}
    )
    assert report["engineer_usd_per_change"] == 120.0
    assert report["ratio"] == pytest.approx(round(120 / 10.52, 2))
    assert report["review"] == {
        "median_hours_to_first_review": 2.0,
        "median_hours_to_merge_or_close": 24.0,
        "rounds_per_change": 1.0,
        "human_comments_per_change": 2.0,
    }
    assert report["repos"][REPO]["prs_merged"] == 1
    assert report["repos"][REPO]["review"] == report["review"]
    assert report["weekly"] == [
        {"week": "2026-W49", "runs": 2, "cost_usd": 0.4, "prs_opened": 1, "prs_merged": 1}
    ]
    other = subprocess.run(
        [sys.executable, "-m", "bot.cli", "report", "--json", "--repo", "someone/else"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert json.loads(other.stdout)["prs_opened"] == 0
    # A period that ends the day before the change (and its runs) began has none of it.
    for until, opened, runs in (("2026-11-30", 0, 0), ("2026-12-01", 1, 2)):
        period = subprocess.run(
            [
                sys.executable,
                *("-m", "bot.cli", "report", "--json"),
                *("--since", "2026-11-01", "--until", until),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        figures = json.loads(period.stdout)
        assert (figures["until"], figures["prs_opened"], figures["runs"]) == (until, opened, runs)
    bad = subprocess.run(
        [sys.executable, "-m", "bot.cli", "report", "--since", "last week"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr


def test_weekly_trend_and_empty_report() -> None:
    empty = build_report([], [], Rates(), since=0.0, repo=None)
    assert empty["ratio"] is None and empty["weekly"] == [] and empty["prs_merged"] == 0


def spend(
    store: Store, run_id: str, repo: str, cost: float, at: float, delivery: str | None = None
) -> None:
    store.record_run(run_id, repo=repo, number=1, kind="fix", delivery_id=delivery, created_at=at)
    store.record_model_call(
        run_id,
        1,
        "claude-sonnet-4-6",
        input_tokens=0,
        output_tokens=0,
        cache_creation_input_tokens=0,
        cache_read_input_tokens=0,
        cost_usd=cost,
        duration_ms=1.0,
        created_at=at,
    )


def test_month_spend_counts_this_month_only_by_repo_and_installation(store: Store) -> None:
    now = time.time()
    spend(store, "a", REPO, 1.0, now)
    spend(store, "b", REPO, 5.0, month_start(now) - 60)  # last month
    spend(store, "c", "octo/other", 2.0, now)
    assert store.ledger.month_spend(repo=REPO) == pytest.approx(1.0)
    assert store.ledger.month_spend() == pytest.approx(3.0)
    caps = MonthlyCaps(repo_usd=1.0)
    reason = over_budget(store, caps, REPO, None)
    assert reason is not None and "$1.00" in reason
    assert over_budget(store, MonthlyCaps(repo_usd=2.5), "octo/other", None) is None
    assert over_budget(store, MonthlyCaps(repo_usd=1.5), REPO, None) is None
    # An installation's spend: the runs its deliveries started, whichever repository.
    SQLQueue(store).enqueue_deliveries(
        [Delivery("d1", "issue_comment", "created", b"{}", True, 42, REPO)]
    )
    spend(store, "e", "octo/third", 0.75, now, delivery="d1")
    assert store.ledger.month_spend(installation_id=42) == pytest.approx(0.75)
    assert over_budget(store, MonthlyCaps(installation_usd=1.0), REPO, 42) is None
    reason = over_budget(store, MonthlyCaps(installation_usd=0.5), REPO, 42)
    assert reason is not None and "installation's monthly budget of $0.50" in reason


def test_a_repository_may_only_narrow_the_operators_budget() -> None:
    settings = Settings.load(repo_monthly_budget_usd=50)
    assert monthly_caps(settings, parse_repo_config("monthly_budget_usd: 10\n")).repo_usd == 10
    assert monthly_caps(settings, parse_repo_config("monthly_budget_usd: 500\n")).repo_usd == 50
    assert monthly_caps(Settings.load(), parse_repo_config("")).repo_usd is None


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_a_monthly_budget_stops_a_run_midway_and_refuses_the_next_task(world: World) -> None:
    world.settings.repo_monthly_budget_usd = 1.0
    # Earlier this month the repository spent all but a hundredth of a cent.
    spend(world.store, "earlier", "octo/widgets", 0.9999, time.time())
    world.model.script(
        [
            Turn.text("1. Run the tests. 2. Fix add()."),
            Turn.tool_use("bash", {"command": "python3 -m unittest -q"}),
            Turn.text("Done."),
        ]
    )
    world.comment("/shipmate fix")
    world.work()
    # One model call was allowed (the budget was not yet spent); it crossed the budget, so the
    # check before the next call stopped the run: over by at most that one call.
    assert len(world.model.requests) == 1
    run = [r for r in world.store.runs_for("octo/widgets", 1) if r["id"] != "earlier"][-1]
    assert run["status"] == "cost_limit"
    spent = world.store.ledger.month_spend(repo="octo/widgets")
    assert 1.0 <= spent < 1.0 + run["cost_usd"] + 1e-9
    assert not world.gh.state.pulls
    world.comment("/shipmate fix")
    world.work()
    assert len(world.model.requests) == 1  # the model was not asked again
    refusal = world.gh.comments_on("octo/widgets", 1)[-1]["body"]
    assert "monthly budget of $1.00 for octo/widgets is spent" in refusal
    assert f"${spent:.2f} this month" in refusal


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_the_check_run_carries_the_changes_ledger(world: World) -> None:
    world.model.script(
        [
            Turn.text("1. Fix add()."),
            edit_add(),
            Turn.text("Fixed add()."),
        ]
    )
    world.comment("/shipmate fix")
    world.work()
    (check,) = world.gh.state.check_runs.values()
    summary = check["output"]["summary"]
    assert "What this change cost so far" in summary and "over 1 run(s)" in summary
    run = world.store.runs_for("octo/widgets", 1)[-1]
    total = run["cost_usd"] + run["sandbox_wall_seconds"] / 3600 * 0.10  # the default rates
    assert f"**Total: ${total:.2f}**" in summary
    assert "- CI: 0.0 min over 0 job(s)" in summary
