"""Shared fixtures. Async tests use anyio's pytest plugin on asyncio."""

from __future__ import annotations

import os
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
