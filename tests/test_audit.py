from __future__ import annotations

from pathlib import Path

import pytest
import structlog
from sqlalchemy.exc import DBAPIError

from bot.config import Settings
from bot.db.audit import StoreAudit, print_audit
from bot.db.store import Store
from bot.github.client import PUSH, GitHubApp, RepoClient
from standins.github import GitHubStandIn
from tests.dbs import migrate_all, postgres_available, postgres_schema


def test_audit_prints_actions_and_egress_in_time_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings.load(data_dir=tmp_path)
    store = Store.from_settings(settings)
    migrate_all(store)
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


def _store(url: str) -> Store:
    store = Store(url)
    migrate_all(store)
    migrate_all(store)  # idempotent: a second start of the service changes nothing
    return store


def _refuses_changes(store: Store) -> None:
    store.append_audit("comment.create", run_id="r1", actor="shipmate", target="o/r#1")
    for statement in (
        "UPDATE audit_log SET action = 'nothing'",
        "DELETE FROM audit_log",
    ):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert [a["action"] for a in store.audit_for_run("r1")] == ["comment.create"]


def test_sqlite_refuses_to_update_or_delete_audit_rows(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        _refuses_changes(store)
    finally:
        store.dispose()


@pytest.mark.postgres
@pytest.mark.skipif(not postgres_available(), reason="needs PostgreSQL on 127.0.0.1:5432")
def test_postgres_refuses_to_update_delete_or_truncate_audit_rows() -> None:
    with postgres_schema() as url:
        store = _store(url)
        try:
            _refuses_changes(store)
            with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
                conn.exec_driver_sql("TRUNCATE audit_log")
        finally:
            store.dispose()


def test_egress_rows_are_audit_rows_of_the_run(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.append_egress(
        task_id="r1",
        host="evil.example",
        port=443,
        method="CONNECT",
        bytes_out=0,
        bytes_in=0,
        allowed=False,
        reason="not allowed",
        at=5.0,
        delivery_id="d-1",
    )
    store.append_audit("run.start", run_id="r1", delivery_id="d-1", actor="alice", target="o/r#1")
    rows = store.audit_for_run("r1")
    assert [(r["action"], r["target"], r["actor"], r["delivery_id"]) for r in rows] == [
        ("egress.denied", "evil.example:443", "sandbox", "d-1"),
        ("run.start", "o/r#1", "alice", "d-1"),
    ]
    assert store.egress_for_task("r1")[0] | {"at": 0} == {
        "at": 0,
        "task_id": "r1",
        "host": "evil.example",
        "port": 443,
        "method": "CONNECT",
        "bytes_out": 0,
        "bytes_in": 0,
        "allowed": False,
        "reason": "not allowed",
        "command": None,  # no sandbox command was running (a request made outside one)
    }
    store.dispose()


@pytest.mark.anyio
async def test_every_github_write_of_a_repo_client_is_audited(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with GitHubStandIn(tmp_path / "gh") as gh:
        app = gh.create_app()
        gh.create_repo("octo/widgets", {"README.md": "# widgets\n"})
        installation = gh.install(app, "octo", ["octo/widgets"], dict(PUSH))
        issue = gh.create_issue("octo/widgets", "add() is wrong", "It subtracts.")
        settings = Settings.load(
            app_id=app.id, private_key=app.private_key_pem, github_api_url=gh.url
        )
        client = await GitHubApp(settings).installation_client(
            installation.id, repository="octo/widgets", permissions=PUSH
        )
        repo = RepoClient(client, "octo/widgets", audit=StoreAudit(store, run_id="r9"))
        number = issue["number"]
        with structlog.contextvars.bound_contextvars(delivery_id="delivery-7"):
            comment_id = await repo.comment(number, "Working on it")
            await repo.edit_comment(comment_id, "Done")
            await repo.react_eyes(comment_id)
            await repo.react_issue(number, "rocket")
            await repo.add_labels(number, ["shipmate:fix"])
            await repo.remove_label(number, "shipmate:fix")
            sha = gh.branch_sha("octo/widgets", "main") or ""
            check = await repo.create_check_run(name="Shipmate", head_sha=sha)
            await repo.update_check_run(check.id, status="completed", conclusion="success")
        rows = store.audit_for_run("r9")
    assert [r["action"] for r in rows] == [
        "comment.create",
        "comment.edit",
        "reaction.create",
        "reaction.create",
        "label.add",
        "label.remove",
        "check_run.create",
        "check_run.update",
    ]
    assert {(r["delivery_id"], r["actor"]) for r in rows} == {("delivery-7", "shipmate")}
    assert rows[0]["target"] == f"octo/widgets#{number}"
    assert rows[4]["detail"] == {"labels": ["shipmate:fix"]}
    store.dispose()
