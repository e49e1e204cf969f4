"""What one change (a Shipmate pull request, across all its runs) cost: model tokens and
dollars, sandbox time, CI minutes, human review, storage. Pure: built from stored rows.

Dollar rates for what is not billed per token (sandbox hours, CI minutes, an engineer's hour)
are the operator's settings, with documented defaults, so the figures compare like for like."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TOKEN_KINDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


@dataclass(frozen=True)
class Rates:
    """Dollar rates (SHIPMATE_SANDBOX_USD_PER_HOUR, SHIPMATE_CI_USD_PER_MINUTE,
    SHIPMATE_ENGINEER_HOURLY_USD, SHIPMATE_ENGINEER_MINUTES_PER_CHANGE,
    SHIPMATE_REVIEW_MINUTES_PER_ROUND)."""

    sandbox_usd_per_hour: float = 0.10
    ci_usd_per_minute: float = 0.008
    engineer_hourly_usd: float = 100.0
    engineer_minutes_per_change: float = 120.0
    review_minutes_per_round: float = 15.0


@dataclass(frozen=True)
class ChangeLedger:
    repo: str
    number: int
    branch: str
    runs: int
    tokens: Mapping[str, int]
    model_usd: float
    sandbox_wall_seconds: float
    sandbox_cpu_seconds: float
    ci_minutes: float
    ci_jobs: int
    opened_at: float | None
    first_review_at: float | None
    review_rounds: int
    human_comments: int
    merged_at: float | None
    closed_at: float | None
    storage_bytes: int

    @property
    def merged(self) -> bool:
        return self.merged_at is not None

    def hours_to_first_review(self) -> float | None:
        if self.opened_at is None or self.first_review_at is None:
            return None
        return (self.first_review_at - self.opened_at) / 3600

    def hours_to_close(self) -> float | None:
        end = self.merged_at or self.closed_at
        if self.opened_at is None or end is None:
            return None
        return (end - self.opened_at) / 3600

    def dollars(self, rates: Rates) -> dict[str, float]:
        """The four costs of the change, and their total."""
        costs = {
            "model": self.model_usd,
            "sandbox": self.sandbox_wall_seconds / 3600 * rates.sandbox_usd_per_hour,
            "ci": self.ci_minutes * rates.ci_usd_per_minute,
            "review": self.review_rounds
            * rates.review_minutes_per_round
            / 60
            * rates.engineer_hourly_usd,
        }
        costs["total"] = sum(costs.values())
        return costs


def _first(activity: Iterable[Mapping[str, Any]], kind: str) -> float | None:
    times = [float(a["at"]) for a in activity if a["kind"] == kind]
    return min(times) if times else None


def change_ledger(
    pull: Mapping[str, Any],
    runs: Iterable[Mapping[str, Any]],
    ci_jobs: Iterable[Mapping[str, Any]],
    activity: Iterable[Mapping[str, Any]],
    storage_bytes: int = 0,
) -> ChangeLedger:
    """`pull` is the pull request's `opened` activity row (repo, number, branch)."""
    runs, ci_jobs, activity = list(runs), list(ci_jobs), list(activity)
    return ChangeLedger(
        repo=str(pull["repo"]),
        number=int(pull["number"]),
        branch=str(pull.get("branch") or ""),
        runs=len(runs),
        tokens={kind: sum(int(r.get(kind) or 0) for r in runs) for kind in TOKEN_KINDS},
        model_usd=sum(float(r.get("cost_usd") or 0) for r in runs),
        sandbox_wall_seconds=sum(float(r.get("sandbox_wall_seconds") or 0) for r in runs),
        sandbox_cpu_seconds=sum(float(r.get("sandbox_cpu_seconds") or 0) for r in runs),
        ci_minutes=sum(float(j.get("seconds") or 0) for j in ci_jobs) / 60,
        ci_jobs=len(ci_jobs),
        opened_at=_first(activity, "opened"),
        first_review_at=_first(activity, "review"),
        review_rounds=sum(1 for a in activity if a["kind"] == "review"),
        human_comments=sum(1 for a in activity if a["kind"] == "comment"),
        merged_at=_first(activity, "merged"),
        closed_at=_first(activity, "closed"),
        storage_bytes=storage_bytes,
    )


def ledger_lines(ledger: ChangeLedger, rates: Rates) -> list[str]:
    """The ledger as Markdown list lines, for the check run and the dashboard."""
    costs = ledger.dollars(rates)
    tokens = ledger.tokens
    review = f"{ledger.review_rounds} review round(s), {ledger.human_comments} comment(s)"
    waited = ledger.hours_to_first_review()
    if waited is not None:
        review += f", first review after {waited:.1f} h"
    return [
        f"- Model: {tokens['input_tokens']:,} in / {tokens['output_tokens']:,} out tokens "
        f"({tokens['cache_read_input_tokens']:,} cache reads) over {ledger.runs} run(s): "
        f"${costs['model']:.2f}",
        f"- Sandbox: {ledger.sandbox_wall_seconds:.0f} s wall, {ledger.sandbox_cpu_seconds:.0f} s "
        f"CPU: ${costs['sandbox']:.2f}",
        f"- CI: {ledger.ci_minutes:.1f} min over {ledger.ci_jobs} job(s): ${costs['ci']:.2f}",
        f"- Review: {review}: ${costs['review']:.2f}",
        f"- Storage: {ledger.storage_bytes / 1024:.0f} KiB of transcripts",
        f"- **Total: ${costs['total']:.2f}**",
    ]
