"""Shared fixtures. Async tests use anyio's pytest plugin on asyncio."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
WEBHOOK_FIXTURES = FIXTURES / "github-webhooks"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_host_shipmate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build their own settings; a developer's SHIPMATE_* must not leak in."""
    for name in list(os.environ):
        if name.startswith("SHIPMATE_") or name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that takes this runs on a fresh SQLite file and on a fresh PostgreSQL schema."""
    from tests.dbs import postgres_available, postgres_schema

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shipmate.db'}"
        return
    if not postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required in CI")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running")
    with postgres_schema() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shipmate.db'}"
