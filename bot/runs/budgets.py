"""Budgets beyond one run: a repository's and an installation's model spend in a calendar month
(UTC). The operator sets them; a repository's config may only narrow its own. Checked before a
task is queued (refused, with the budget and the spend) and before every model call of a run
(the run stops with `cost_limit`), so no run ends over budget by more than one model call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.config import RepoConfig, Settings


@dataclass(frozen=True)
class MonthlyCaps:
    repo_usd: float | None = None
    installation_usd: float | None = None


def _narrowest(*caps: float | None) -> float | None:
    given = [cap for cap in caps if cap is not None]
    return min(given) if given else None


def monthly_caps(settings: Settings, config: RepoConfig) -> MonthlyCaps:
    return MonthlyCaps(
        repo_usd=_narrowest(settings.repo_monthly_budget_usd, config.monthly_budget_usd),
        installation_usd=settings.installation_monthly_budget_usd,
    )


def over_budget(
    store: Any, caps: MonthlyCaps, repo: str, installation_id: int | None
) -> str | None:
    """Why no more model calls may be made this month, or None."""
    if caps.repo_usd is not None:
        spent = store.ledger.month_spend(repo=repo)
        if spent >= caps.repo_usd:
            return (
                f"the monthly budget of ${caps.repo_usd:.2f} for {repo} is spent "
                f"(${spent:.2f} this month)"
            )
    if caps.installation_usd is not None and installation_id is not None:
        spent = store.ledger.month_spend(installation_id=installation_id)
        if spent >= caps.installation_usd:
            return (
                f"the installation's monthly budget of ${caps.installation_usd:.2f} is spent "
                f"(${spent:.2f} this month)"
            )
    return None
