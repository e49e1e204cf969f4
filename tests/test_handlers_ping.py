"""handlers/ping.py: the hook's ping is noted, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from handlers import ping
from tests.fakes import FakeRepo, context_for, recorded, store_at


@pytest.mark.anyio
async def test_ping_is_logged_and_asks_github_nothing(tmp_path: Path) -> None:
    payload = recorded("ping", "payload.json")
    repo = FakeRepo()
    with capture_logs() as logs:
        await ping.router.dispatch(context_for(store_at(tmp_path), "ping", payload, repo))
    (line,) = [entry for entry in logs if entry["event"] == "ping"]
    assert line["zen"] == payload["zen"] and line["hook_id"] == payload["hook"]["id"]
    assert repo.calls == []
