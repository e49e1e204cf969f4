from __future__ import annotations

from pathlib import Path

import pytest

from bot.audit import print_audit
from bot.config import Settings
from bot.store import Store


def test_audit_prints_actions_and_egress_in_time_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings.load(data_dir=tmp_path)
    store = Store.from_settings(settings)
    store.migrate()
    store.record_run("r1", repo="octo/widgets", status="completed")
    store.append_egress(
        task_id="r1",
        host="pypi.org",
        port=443,
        method="CONNECT",
        bytes_out=10,
        bytes_in=20,
        allowed=True,
        reason="tunnel",
        at=1.0,
    )
    store.append_audit(
        "pull_request.create", run_id="r1", actor="shipmate[bot]", target="octo/widgets#7"
    )
    store.append_egress(
        task_id="r1",
        host="evil.example",
        port=80,
        method="GET",
        bytes_out=0,
        bytes_in=0,
        allowed=False,
        reason="not allowed",
        at=2.0,
    )
    store.dispose()
    assert print_audit(settings, "r1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("run r1: completed octo/widgets")
    assert "egress  CONNECT pypi.org:443 allowed" in lines[1]
    assert "DENIED" in lines[2] and "evil.example" in lines[2]
    assert "pull_request.create octo/widgets#7 by shipmate[bot]" in lines[3]
    assert print_audit(settings, "missing") == 1
