"""`shipmate report`'s review test and cost test per repository over a period: figures of two
repositories worked out by hand, in the JSON and in the text."""

from __future__ import annotations

import argparse

import pytest

from bot.config import Settings
from bot.runs.costs import ChangeLedger, Rates
from bot.runs.report import build_report, parse_until, rates_of, render

NOV_2 = 1793613600.0  # 2026-11-02T10:00:00Z
HOUR = 3600.0
RATES = Rates(
    sandbox_usd_per_hour=1.0,
    ci_usd_per_minute=0.01,
    engineer_hourly_usd=60.0,
    engineer_minutes_per_change=120.0,
    review_minutes_per_round=10.0,
)


def change(repo: str, number: int, **values: object) -> ChangeLedger:
    base: dict[str, object] = {
        "repo": repo,
        "number": number,
        "branch": f"shipmate/{number}-x",
        "runs": 1,
        "tokens": {},
        "model_usd": 0.0,
        "sandbox_wall_seconds": 0.0,
        "sandbox_cpu_seconds": 0.0,
        "ci_minutes": 0.0,
        "ci_jobs": 0,
        "opened_at": NOV_2,
        "first_review_at": None,
        "review_rounds": 0,
        "human_comments": 0,
        "merged_at": None,
        "closed_at": None,
        "storage_bytes": 0,
    }
    return ChangeLedger(**{**base, **values})  # type: ignore[arg-type]


def two_repositories() -> tuple[list[ChangeLedger], list[dict[str, object]]]:
    ledgers = [
        # widgets: one merged change (2 review rounds), one closed unmerged (1 round).
        change(
            "octo/widgets",
            1,
            model_usd=1.0,
            sandbox_wall_seconds=HOUR,
            ci_minutes=10.0,
            first_review_at=NOV_2 + 4 * HOUR,
            review_rounds=2,
            human_comments=3,
            merged_at=NOV_2 + 26 * HOUR,
        ),
        change(
            "octo/widgets",
            2,
            model_usd=0.2,
            first_review_at=NOV_2 + 2 * HOUR,
            review_rounds=1,
            human_comments=1,
            closed_at=NOV_2 + 10 * HOUR,
        ),
        # gadgets: one change merged an hour after it was opened, nobody reviewed it.
        change("octo/gadgets", 3, model_usd=0.5, merged_at=NOV_2 + HOUR),
    ]
    runs: list[dict[str, object]] = [
        # One job, killed once and run again: two attempts' records, one run.
        {"id": "a1b2c3d4e5f6", "repo": "octo/widgets", "cost_usd": 0.4, "created_at": NOV_2},
        {"id": "a1b2c3d4e5f6.2", "repo": "octo/widgets", "cost_usd": 0.6, "created_at": NOV_2},
        {"repo": "octo/widgets", "cost_usd": 0.2, "created_at": NOV_2},
        {"repo": "octo/gadgets", "cost_usd": 0.5, "created_at": NOV_2},
    ]
    return ledgers, runs


def test_review_and_cost_figures_per_repository_over_a_period() -> None:
    ledgers, runs = two_repositories()
    until = parse_until("2026-11-30")
    report = build_report(ledgers, runs, RATES, since=NOV_2 - HOUR, repo=None, until=until)
    assert (report["since"], report["until"]) == ("2026-11-02", "2026-11-30")
    widgets, gadgets = report["repos"]["octo/widgets"], report["repos"]["octo/gadgets"]
    # widgets' merged change: model 1.00, sandbox 1 h at $1 = 1.00, CI 10 min at 1 cent = 0.10,
    # review 2 rounds x 10 min at $60/h = 20.00; total 22.10. An engineer: 2 h x $60 = 120.
    assert widgets["per_merged_change_usd"] == pytest.approx(
        {"model": 1.0, "sandbox": 1.0, "ci": 0.1, "review": 20.0, "total": 22.1}
    )
    assert widgets["ratio"] == round(120 / 22.1, 2)
    # Review: first reviews after 4 h and 2 h; merged after 26 h, closed after 10 h.
    assert widgets["review"] == {
        "median_hours_to_first_review": 3.0,
        "median_hours_to_merge_or_close": 18.0,
        "rounds_per_change": 1.5,
        "human_comments_per_change": 2.0,
    }
    assert (widgets["runs"], widgets["prs_opened"], widgets["prs_merged"]) == (2, 2, 1)
    assert widgets["run_cost_usd"] == pytest.approx(1.2)  # both attempts' costs
    assert [(week["runs"], week["cost_usd"]) for week in report["weekly"]] == [(3, 1.7)]
    assert gadgets["per_merged_change_usd"]["total"] == pytest.approx(0.5)
    assert gadgets["ratio"] == 240.0
    assert gadgets["review"] == {
        "median_hours_to_first_review": None,
        "median_hours_to_merge_or_close": 1.0,
        "rounds_per_change": 0.0,
        "human_comments_per_change": 0.0,
    }
    text = render(report)
    assert text.splitlines()[0] == "Shipmate report since 2026-11-02 until 2026-11-30"
    block = text[text.index("octo/widgets:") :]
    assert "  per merged change: model $1.00, sandbox $1.00, ci $0.10, review $20.00" in block
    assert "  an engineer doing it: $120.00 -> the agent is 5.43x cheaper" in block
    assert "  review: median 3 h to the first review, 18 h to merge or close; 1.5 rounds" in block
    gadgets_block = text[text.index("octo/gadgets:") : text.index("octo/widgets:")]
    assert "review: median - to the first review, 1 h to merge or close" in gadgets_block


def test_the_period_ends_after_its_last_day() -> None:
    assert parse_until(None) is None
    assert parse_until("2026-11-30") == 1796083200.0  # 2026-12-01T00:00:00Z
    with pytest.raises(argparse.ArgumentTypeError, match="YYYY-MM-DD"):
        parse_until("November")


def test_the_rates_are_the_settings_of_their_names() -> None:
    settings = Settings.load(
        sandbox_usd_per_hour=1.5,
        ci_usd_per_minute=0.02,
        engineer_hourly_usd=80.0,
        engineer_minutes_per_change=90.0,
        review_minutes_per_round=5.0,
    )
    assert rates_of(settings) == Rates(
        sandbox_usd_per_hour=1.5,
        ci_usd_per_minute=0.02,
        engineer_hourly_usd=80.0,
        engineer_minutes_per_change=90.0,
        review_minutes_per_round=5.0,
    )
