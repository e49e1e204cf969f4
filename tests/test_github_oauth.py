"""Signing in with GitHub and redelivering a webhook, against the GitHub stand-in over a real
socket: the OAuth web flow of the App's client (bot/github/oauth.py) and GitHub's App delivery
API as `GitHubApp.redeliver` pages through it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.config import Settings
from bot.github.auth import GitHubApp
from bot.github.oauth import SignInFailed, authorize_url, sign_in
from standins.github import GitHubStandIn
from standins.github_common import App
from tests.servers import running

CALLBACK = "http://127.0.0.1:9/dashboard/auth/github/callback"


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(tmp_path) as standin:
        yield standin


def _app(gh: GitHubStandIn) -> App:
    app = gh.create_app()
    for name in ("octo/widgets", "octo/docs", "octo/other"):
        gh.create_repo(name, {"README.md": "x\n"})
    gh.install(app, "octo", ["octo/widgets", "octo/docs"], {"contents": "write"})
    another = gh.create_app("another")
    gh.install(another, "octo", ["octo/other"], {"contents": "write"})
    gh.add_collaborator("octo/widgets", "alice", "write")
    gh.add_collaborator("octo/docs", "alice", "read")
    gh.add_collaborator("octo/other", "alice", "admin")
    return app


def _code(gh: GitHubStandIn, client_id: str, login: str) -> str:
    gh.oauth.signed_in = login
    sent = httpx.get(authorize_url(gh.url, client_id, "the-state", CALLBACK))
    assert sent.status_code == 302
    location = httpx.URL(sent.headers["location"])
    assert str(location).startswith(CALLBACK) and location.params["state"] == "the-state"
    return location.params["code"]


@pytest.mark.anyio
async def test_a_user_signs_in_and_sees_only_this_apps_repositories_they_may_write_to(
    gh: GitHubStandIn,
) -> None:
    app = _app(gh)
    client_id, secret = gh.oauth.client_for(app)
    code = _code(gh, client_id, "alice")
    user = await sign_in(gh.url, app.id, client_id, secret, code, CALLBACK)
    # docs: read only; other: another App's installation.
    assert user.login == "alice" and user.repos == ("octo/widgets",)
    with pytest.raises(SignInFailed):  # a code is single use
        await sign_in(gh.url, app.id, client_id, secret, code, CALLBACK)
    with pytest.raises(SignInFailed):  # and only for its own client's secret
        await sign_in(gh.url, app.id, client_id, "wrong", _code(gh, client_id, "alice"), CALLBACK)
    assert gh.errors == []


@pytest.mark.anyio
async def test_someone_nobody_installed_the_app_for_sees_nothing(gh: GitHubStandIn) -> None:
    app = _app(gh)
    client_id, secret = gh.oauth.client_for(app)
    user = await sign_in(gh.url, app.id, client_id, secret, _code(gh, client_id, "carol"), CALLBACK)
    assert user == type(user)("carol", ())
    unknown = httpx.get(authorize_url(gh.url, "Iv1.nobody", "s", CALLBACK))
    assert unknown.status_code == 404
    assert httpx.get(f"{gh.url}/user").status_code == 401


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver that answers 503 to the first delivery of each id, then 202."""
    seen: list[dict[str, Any]] = []

    async def hook(request: Request) -> JSONResponse:
        guid = request.headers["x-github-delivery"]
        first = all(s["guid"] != guid for s in seen)
        seen.append({"guid": guid, "body": await request.body()})
        return JSONResponse({"status": "error" if first else "queued"}, 503 if first else 202)

    with running(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        yield f"{base}/hook", seen


@pytest.mark.anyio
async def test_redeliver_finds_the_delivery_across_pages_and_github_sends_it_again(
    gh: GitHubStandIn, receiver: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, seen = receiver
    app = gh.create_app()
    gh.create_repo("octo/widgets", {"README.md": "x\n"})
    installation = gh.install(app, "octo", ["octo/widgets"], {"issues": "write"})
    payload = {"installation": {"id": installation.id}, "zen": "Keep it logically awesome."}
    answer = gh.emit("ping", None, payload, to=url, secret=app.webhook_secret)
    assert answer.status_code == 503
    (oldest,) = gh.hooks.sent
    for _ in range(119):  # newer ones, each as the stand-in records a delivery it sent
        gh.hooks.record(url, {**oldest.headers, "X-GitHub-Delivery": "x"}, b"{}", payload, None, 0)
    settings = Settings.load(
        app_id=app.id,
        private_key=SecretStr(app.private_key_pem),
        github_api_url=gh.url,
        data_dir=tmp_path,
    )
    github_app = GitHubApp(settings)
    assert await github_app.redeliver(oldest.guid)  # on the second page of 100
    assert seen[-1] == {"guid": oldest.guid, "body": oldest.body}
    again = gh.hooks.sent[-1]
    assert again.redelivery and again.status_code == 202
    listed = httpx.get(
        f"{gh.url}/app/hook/deliveries",
        params={"per_page": 1},
        headers={"Authorization": f"Bearer {github_app.jwt()}"},
    )
    (item,) = listed.json()
    assert item["guid"] == oldest.guid and item["redelivery"] and item["status"] == "OK"
    assert 'rel="next"' in listed.headers["link"]
    assert not await github_app.redeliver("not-a-delivery-github-has")
