"""`shipmate report`: runs, pull requests opened and merged, the four costs of a merged change
(model, sandbox, CI, review) beside an engineer doing it, the review figures, and a weekly trend;
for all repositories and for each, over a period (`--since`, `--until`). The review figures are
the essay's review test, the costs beside the engineer's its cost test. The figures are pure
functions of the stored ledger."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.runs.attempts import job_of
from bot.runs.costs import ChangeLedger, Rates, change_ledger

COSTS = ("model", "sandbox", "ci", "review", "total")


def rates_of(settings: Settings) -> Rates:
    """The settings' rates: each field of `Rates` is the setting of its name."""
    return Rates(**{rate.name: getattr(settings, rate.name) for rate in fields(Rates)})


def week_of(at: float) -> str:
    year, week, _ = datetime.fromtimestamp(at, UTC).isocalendar()
    return f"{year}-W{week:02d}"


def _mean(values: Sequence[float]) -> float:
    return round(statistics.fmean(values), 6) if values else 0.0


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _job(run: Mapping[str, Any], n: int) -> str:
    """The job a run record is an attempt of: the attempts of one job (`key`, `key.2`, ...)
    are one run; their costs, each attempt's own model calls', add up."""
    return job_of(str(run["id"])) if run.get("id") else f"#{n}"


def figures(
    ledgers: Sequence[ChangeLedger], runs: Sequence[Mapping[str, Any]], rates: Rates
) -> dict[str, Any]:
    merged = [ledger for ledger in ledgers if ledger.merged]
    per_change = {k: _mean([ledger.dollars(rates)[k] for ledger in merged]) for k in COSTS}
    engineer = rates.engineer_hourly_usd * rates.engineer_minutes_per_change / 60
    waits = [w for w in (ledger.hours_to_first_review() for ledger in ledgers) if w is not None]
    closes = [c for c in (ledger.hours_to_close() for ledger in ledgers) if c is not None]
    return {
        "runs": len({_job(run, n) for n, run in enumerate(runs)}),
        "run_cost_usd": round(sum(float(r.get("cost_usd") or 0) for r in runs), 6),
        "prs_opened": len(ledgers),
        "prs_merged": len(merged),
        "per_merged_change_usd": per_change,
        "engineer_usd_per_change": round(engineer, 6),
        "ratio": round(engineer / per_change["total"], 2)
        if merged and per_change["total"]
        else None,
        "review": {
            "median_hours_to_first_review": _median(waits),
            "median_hours_to_merge_or_close": _median(closes),
            "rounds_per_change": _mean([float(ledger.review_rounds) for ledger in ledgers]),
            "human_comments_per_change": _mean(
                [float(ledger.human_comments) for ledger in ledgers]
            ),
        },
        "ci_minutes": round(sum(ledger.ci_minutes for ledger in ledgers), 3),
    }


def weekly(
    ledgers: Iterable[ChangeLedger], runs: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    weeks: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"runs": 0, "cost_usd": 0.0, "prs_opened": 0, "prs_merged": 0}
    )
    counted: set[str] = set()
    for n, run in enumerate(runs):
        week = weeks[week_of(float(run["created_at"]))]
        # A job's attempts are one run, in the week its first attempt began (runs are in order).
        week["runs"] += _job(run, n) not in counted
        counted.add(_job(run, n))
        week["cost_usd"] = round(week["cost_usd"] + float(run.get("cost_usd") or 0), 6)
    for ledger in ledgers:
        if ledger.opened_at is not None:
            weeks[week_of(ledger.opened_at)]["prs_opened"] += 1
        if ledger.merged_at is not None:
            weeks[week_of(ledger.merged_at)]["prs_merged"] += 1
    return [{"week": week, **values} for week, values in sorted(weeks.items())]


def build_report(
    ledgers: Sequence[ChangeLedger],
    runs: Sequence[Mapping[str, Any]],
    rates: Rates,
    *,
    since: float,
    repo: str | None,
    until: float | None = None,
) -> dict[str, Any]:
    """`until` is where the period ends (exclusive); None: now."""
    repos = sorted(
        {ledger.repo for ledger in ledgers} | {str(r["repo"]) for r in runs if r.get("repo")}
    )
    last_day = None if until is None else datetime.fromtimestamp(until - 1, UTC).date()
    return {
        "since": datetime.fromtimestamp(since, UTC).date().isoformat(),
        "until": last_day.isoformat() if last_day else None,
        "repo": repo,
        **figures(ledgers, runs, rates),
        "weekly": weekly(ledgers, runs),
        "repos": {
            name: figures(
                [ledger for ledger in ledgers if ledger.repo == name],
                [r for r in runs if r.get("repo") == name],
                rates,
            )
            for name in repos
        },
    }


def _review_line(review: Mapping[str, Any]) -> str:
    def hours(value: float | None) -> str:
        return "-" if value is None else f"{value:g} h"

    return (
        f"review: median {hours(review['median_hours_to_first_review'])} to the first review, "
        f"{hours(review['median_hours_to_merge_or_close'])} to merge or close; "
        f"{review['rounds_per_change']:.1f} rounds and {review['human_comments_per_change']:.1f} "
        "human comments a change"
    )


def _cost_lines(report: Mapping[str, Any]) -> list[str]:
    per, ratio = report["per_merged_change_usd"], report["ratio"]
    return [
        "per merged change: " + ", ".join(f"{k} ${per[k]:.2f}" for k in COSTS),
        f"an engineer doing it: ${report['engineer_usd_per_change']:.2f}"
        + (f" -> the agent is {ratio:g}x cheaper" if ratio else " (no merged change to compare)"),
    ]


def _counts(report: Mapping[str, Any]) -> list[str]:
    return [
        f"runs: {report['runs']} (${report['run_cost_usd']:.2f} of model time)",
        f"pull requests: {report['prs_opened']} opened, {report['prs_merged']} merged, "
        f"{report['ci_minutes']:g} CI minutes",
    ]


def render(report: Mapping[str, Any]) -> str:
    period = f"since {report['since']}" + (f" until {report['until']}" if report["until"] else "")
    lines = [
        f"Shipmate report {period}" + (f" for {report['repo']}" if report["repo"] else ""),
        *_counts(report),
        *_cost_lines(report),
        _review_line(report["review"]),
        "weekly:",
    ]
    for week in report["weekly"]:
        lines.append(
            f"  {week['week']}: {week['runs']} runs, ${week['cost_usd']:.2f}, "
            f"{week['prs_opened']} opened, {week['prs_merged']} merged"
        )
    for name, repo_figures in report["repos"].items():
        lines.append(f"{name}:")
        parts = [*_counts(repo_figures), *_cost_lines(repo_figures)]
        lines += [f"  {line}" for line in (*parts, _review_line(repo_figures["review"]))]
    return "\n".join(lines)


def _storage(paths: Iterable[str]) -> int:
    total = 0
    for path in paths:
        try:
            total += Path(path).stat().st_size
        except OSError:
            continue
    return total


def load_ledgers(
    store: Any, repo: str | None, since: float, until: float | None = None
) -> list[ChangeLedger]:
    """The changes opened in [since, until), each with all its runs, CI and review."""
    ledgers = []
    for pull in store.ledger.opened_pulls(repo, since, until):
        tables = store.ledger
        runs = tables.runs_of_branch(pull["repo"], pull["branch"])
        ledgers.append(
            change_ledger(
                pull,
                runs,
                tables.ci_jobs_for(pull["repo"], pull["branch"]),
                tables.activity_for(pull["repo"], pull["number"]),
                _storage(tables.transcript_paths([r["id"] for r in runs])),
            )
        )
    return ledgers


def change_so_far(
    store: Any, repo: str, number: int, branch: str, current: Mapping[str, Any]
) -> ChangeLedger:
    """The ledger of the change `current` (this run's figures, not stored yet) belongs to."""
    tables = store.ledger
    runs = [*tables.runs_of_branch(repo, branch), current]
    pull = {"repo": repo, "number": number, "branch": branch}
    return change_ledger(
        pull,
        runs,
        tables.ci_jobs_for(repo, branch),
        tables.activity_for(repo, number),
        _storage(tables.transcript_paths([r["id"] for r in runs if r.get("id")])),
    )


def parse_since(text: str | None, now: float | None = None) -> float:
    """A date (YYYY-MM-DD, UTC); unset: 30 days back."""
    if not text:
        return (time.time() if now is None else now) - 30 * 86400
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since takes a date as YYYY-MM-DD, not {text!r}"
        ) from None


def parse_until(text: str | None) -> float | None:
    """The period's last day (YYYY-MM-DD, UTC, included): the end of that day; unset: None."""
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--until takes a date as YYYY-MM-DD, not {text!r}"
        ) from None
    return day.timestamp() + 86400


def report_command(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db.store import Store

    try:
        since, until = parse_since(args.since), parse_until(args.until)
    except argparse.ArgumentTypeError as exc:
        print(f"shipmate report: {exc}", file=sys.stderr)
        return 2
    store = Store.from_settings(settings)
    try:
        store.migrate()
        ledgers = load_ledgers(store, args.repo, since, until)
        runs = store.ledger.runs_since(args.repo, since, until)
    finally:
        store.dispose()
    report = build_report(
        ledgers, runs, rates_of(settings), since=since, repo=args.repo, until=until
    )
    print(json.dumps(report) if args.json else render(report))
    return 0
