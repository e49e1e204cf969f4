"""Attack 3 of issue 13 from GitHub: a repository's `.github/shipmate.yml` asking for Shipmate's
own settings, or for a secret the operator never declared for it, through the real server,
queue, worker and the GitHub stand-in. The run stops before any checkout or sandbox, and the
sticky comment says why (never with a value)."""

from __future__ import annotations

import pytest

from tests.test_e2e_github import REPO, SECRET, World, world

__all__ = ["world"]
pytestmark = pytest.mark.e2e


def _sticky(world: World) -> str:
    (sticky,) = [
        c["body"] for c in world.gh.comments_on(REPO, 1) if c["user"]["login"] == "shipmate[bot]"
    ]
    return str(sticky)


@pytest.mark.parametrize(
    ("shipmate_yml", "why"),
    [
        (
            "secrets: {SHIPMATE_WEBHOOK_SECRET: 127.0.0.1, ANTHROPIC_API_KEY: 127.0.0.1}\n",
            "line 1: secrets: list the names of secrets the operator declared",
        ),
        ("secrets: [SHIPMATE_PRIVATE_KEY]\n", "SHIPMATE_PRIVATE_KEY is one of Shipmate's own"),
        (
            "secrets: [NPM_TOKEN]\n",
            "requests secrets this run cannot have: secret NPM_TOKEN is not declared by the "
            "operator (SHIPMATE_SECRETS_FILE)",
        ),
    ],
)
def test_a_repository_gets_no_secret_the_operator_did_not_grant_it(
    world: World, monkeypatch: pytest.MonkeyPatch, shipmate_yml: str, why: str
) -> None:
    monkeypatch.setenv("SHIPMATE_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("NPM_TOKEN", "npm-real-in-the-env-3c4d5e")
    world.gh.commit(REPO, "main", {".github/shipmate.yml": shipmate_yml})
    world.comment("/shipmate fix")
    world.work()
    sticky = _sticky(world)
    assert "Shipmate cannot start" in sticky and why in sticky
    assert world.model.requests == [] and world.gh.state.pulls == {}
    assert SECRET not in sticky and "npm-real-in-the-env" not in sticky
