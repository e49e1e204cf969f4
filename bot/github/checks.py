"""What CI reports on a commit: check runs (Shipmate's own among them), check suites and
commit statuses."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict, Unpack

from bot.github.calls import PAGE, RepoCalls
from bot.github.models import CheckRun, CheckSuite, CombinedStatus, CommitStatus, text_or_none


class CheckFields(TypedDict, total=False):
    """What a check run shows, the same on creating and on updating it."""

    conclusion: str | None
    title: str | None
    summary: str | None
    details_url: str | None
    # Buttons on the check run (at most three); GitHub sends check_run.requested_action.
    actions: Sequence[Mapping[str, str]] | None


class CheckCalls(RepoCalls):
    async def create_check_run(
        self,
        *,
        name: str,
        head_sha: str,
        status: str = "in_progress",
        **fields: Unpack[CheckFields],
    ) -> CheckRun:
        """A new check run on `head_sha`; for a delivery's job run again, the one an earlier
        attempt created there, updated to these fields (bot/github/replies.py)."""
        rest, o, r = self.github.rest, self.owner, self.repo
        payload: dict[str, Any] = {"name": self.outbound(name), "head_sha": head_sha}
        payload["status"] = status
        payload.update(_check_fields(fields, self.outbound))
        if self.replies is not None:
            payload["external_id"] = self.replies.check_key
            earlier = await self._created_before(name, head_sha) if self.replies.retried else None
            if earlier is not None:
                return await self.update_check_run(earlier.id, status=status, **fields)
        run = CheckRun.of(await self._json(lambda: rest.checks.async_create(o, r, data=payload)))  # type: ignore[call-overload]
        await self._audited("check_run.create", f"@{head_sha}", name=name, status=status)
        return run

    async def update_check_run(
        self,
        check_run_id: int,
        *,
        status: str | None = None,
        **fields: Unpack[CheckFields],
    ) -> CheckRun:
        rest, o, r = self.github.rest, self.owner, self.repo
        payload: dict[str, Any] = {} if status is None else {"status": status}
        payload.update(_check_fields(fields, self.outbound))
        run = CheckRun.of(
            await self._json(lambda: rest.checks.async_update(o, r, check_run_id, data=payload))  # type: ignore[call-overload]
        )
        await self._audited("check_run.update", f" check run {check_run_id}", status=status)
        return run

    async def _created_before(self, name: str, head_sha: str) -> CheckRun | None:
        assert self.replies is not None
        mine = (
            r
            for r in await self.ref_check_runs(head_sha, name)
            if self.replies.created_by_us(r, name)
        )
        return next(mine, None)

    async def ref_check_runs(self, ref: str, name: str) -> list[CheckRun]:
        """Every check run named `name` on `ref`, each of its reruns included."""
        rest, o, r = self.github.rest, self.owner, self.repo
        found = await self._pages(
            lambda page: rest.checks.async_list_for_ref(
                o, r, ref, check_name=name, filter_="all", per_page=PAGE, page=page
            ),
            key="check_runs",
        )
        return [CheckRun.of(d) for d in found]

    async def check_run(self, check_run_id: int) -> CheckRun:
        rest, o, r = self.github.rest, self.owner, self.repo
        return CheckRun.of(await self._json(lambda: rest.checks.async_get(o, r, check_run_id)))

    async def check_suite(self, check_suite_id: int) -> CheckSuite:
        rest, o, r = self.github.rest, self.owner, self.repo
        return CheckSuite.of(
            await self._json(lambda: rest.checks.async_get_suite(o, r, check_suite_id))
        )

    async def suite_check_runs(self, check_suite_id: int) -> list[CheckRun]:
        """The latest check runs of a check suite."""
        rest, o, r = self.github.rest, self.owner, self.repo
        data = await self._json(
            lambda: rest.checks.async_list_for_suite(o, r, check_suite_id, per_page=PAGE)
        )
        return [CheckRun.of(d) for d in data.get("check_runs") or []]

    async def combined_status(self, ref: str) -> CombinedStatus:
        rest, o, r = self.github.rest, self.owner, self.repo
        d = await self._json(
            lambda: rest.repos.async_get_combined_status_for_ref(o, r, ref, per_page=PAGE)
        )
        statuses = tuple(
            CommitStatus(
                str(s.get("context", "")),
                str(s.get("state", "")),
                text_or_none(s.get("description")),
                text_or_none(s.get("target_url")),
            )
            for s in d.get("statuses") or []
        )
        return CombinedStatus(str(d.get("sha", ref)), str(d.get("state", "")), statuses)


def _check_fields(fields: CheckFields, clean: Callable[[str], str]) -> dict[str, Any]:
    """GitHub's fields for what the check run shows (a field left out or None is not sent), its
    texts passed through `clean`; a button's identifier comes back as it went."""
    conclusion = fields.get("conclusion")
    title, summary = fields.get("title"), fields.get("summary")
    found: dict[str, Any] = {}
    if (actions := fields.get("actions")) is not None:
        found["actions"] = [
            {k: v if k == "identifier" else clean(v) for k, v in action.items()}
            for action in actions
        ]
    if conclusion is not None:
        # A conclusion implies the run is done; GitHub requires both together.
        found["status"] = "completed"
        found["conclusion"] = conclusion
    if title is not None or summary is not None:
        found["output"] = {"title": clean(title or ""), "summary": clean(summary or "")}
    if (details_url := fields.get("details_url")) is not None:
        found["details_url"] = details_url
    return found
