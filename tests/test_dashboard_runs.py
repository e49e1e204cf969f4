"""The dashboard's runs list filters by status, `interrupted` among them: the record of an
attempt whose worker stopped before its job ran again (bot/runs/attempts.py), shown in its
own colour."""

from __future__ import annotations

from bot.db.store import Store
from bot.jobs.sql import SQLQueue
from tests.test_dashboard_queue import _signed_in
from tests.test_dashboard_queue import site as site


def test_the_runs_list_filters_interrupted_attempts(site: tuple[str, Store, SQLQueue]) -> None:
    base, store, _ = site
    store.record_run("a1b2c3d4e5f6", repo="octo/widgets", number=1, status="interrupted")
    store.record_run("a1b2c3d4e5f6.2", repo="octo/widgets", number=1, status="completed")
    client = _signed_in(base)
    page = client.get("/dashboard/", params={"status": "interrupted"})
    client.close()
    assert page.status_code == 200
    assert '<option value="interrupted" selected>interrupted</option>' in page.text
    assert '<span class="status interrupted">interrupted</span>' in page.text
    assert '/runs/a1b2c3d4e5f6"' in page.text and "a1b2c3d4e5f6.2" not in page.text
    assert ".status.interrupted {" in page.text  # its own colour, not the default grey
