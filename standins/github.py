"""A stand-in for GitHub on a real socket: a REST subset held to GitHub's own OpenAPI
description (tests/fixtures/github-openapi/), with GitHub's shapes, status codes and headers,
App JWT and installation-token auth with repository and permission scoping, git smart HTTP
through the real `git http-backend`, failure injection, and a webhook emitter built from the
recorded payloads. Tests set state up, run the app against `SHIPMATE_GITHUB_API_URL`, and
assert on what was recorded.

    with GitHubStandIn(tmp_path) as gh:
        app = gh.create_app()
        gh.create_repo("octo/widgets", {"README.md": "hi"})
        installation = gh.install(app, "octo", ["octo/widgets"], {"contents": "write"})

Its parts, one module each: the core it shares (github_core), set-up (github_setup*), the REST
front door that holds requests to the description (github_http) and its route table
(github_routes) over one module per resource family, git smart HTTP (github_smart_http) and
the webhook emitter (github_webhooks)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path

from standins import github_git, github_hooks, github_oauth
from standins.github_common import App, Installation, Repo, Token
from standins.github_setup_ci import CISetup
from standins.github_setup_pulls import PullSetup
from standins.github_smart_http import SmartHttp
from standins.github_webhooks import FIXTURES, Webhooks
from standins.server import ServerThread


class GitHubStandIn(SmartHttp, Webhooks, PullSetup, CISetup):
    def __init__(self, root: Path, port: int | None = None, first_id: int | None = None) -> None:
        super().__init__(root, first_id)
        self.git_database = github_git.GitDatabase()
        self.oauth = github_oauth.OAuthWeb(self)
        self.hooks = github_hooks.HookDeliveries(self)
        self._server = ServerThread(self._starlette(), port=port)

    def __enter__(self) -> GitHubStandIn:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


DEMO_PERMISSIONS = {
    "metadata": "read",
    "contents": "write",
    "issues": "write",
    "pull_requests": "write",
    "checks": "write",
    "statuses": "write",
    "actions": "write",
    "deployments": "write",
}


# The demo repository: a failing test its tests show. The test runs with the standard library's
# unittest on python3, which every Shipmate host has (the sandbox shows the host's folders when
# no image is named), so the demo needs no package index and no image to pass once fixed.
DEMO_FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    "test_calc.py": (
        "import unittest\n\nfrom calc import add\n\n\nclass AddTest(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
    ),
    ".github/shipmate.yml": "test: python3 -m unittest -v\n",
}


def demo(gh: GitHubStandIn) -> dict[str, str]:
    """An App "shipmate" installed on octo/widgets (a failing test, an issue, alice as a
    maintainer); the settings that point Shipmate at it, the private key written beside."""
    app = gh.create_app("shipmate")
    gh.create_repo("octo/widgets", dict(DEMO_FILES))
    installation = gh.install(app, "octo", ["octo/widgets"], DEMO_PERMISSIONS)
    gh.add_collaborator("octo/widgets", "alice", "maintain")
    gh.create_issue("octo/widgets", "add() subtracts", "2 + 3 should be 5.", user="alice")
    key = gh.root / "shipmate.private-key.pem"
    key.write_text(app.private_key_pem)
    key.chmod(0o600)
    return {
        "SHIPMATE_GITHUB_API_URL": gh.url,
        "SHIPMATE_APP_ID": str(app.id),
        "SHIPMATE_PRIVATE_KEY_PATH": str(key),
        "SHIPMATE_WEBHOOK_SECRET": app.webhook_secret,
        "INSTALLATION_ID": str(installation.id),
        "CLONE_URL": f"{gh.url}/octo/widgets.git",
    }


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m standins.github [--port N] [--root DIR]`: serve a demo installation until
    interrupted, printing the settings that point Shipmate at it."""
    import argparse
    import contextlib
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m standins.github")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--root", type=Path, default=None, help="where the repositories live")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        root = args.root or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        first_id = 10**6 * (1 + secrets.randbelow(1000))
        gh = stack.enter_context(GitHubStandIn(root, port=args.port, first_id=first_id))
        for name, value in demo(gh).items():
            print(f"{name}={value}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            gh._server.thread.join()


__all__ = [
    "FIXTURES",
    "App",
    "GitHubStandIn",
    "Installation",
    "Repo",
    "Token",
    "demo",
    "main",
]


if __name__ == "__main__":
    main()
