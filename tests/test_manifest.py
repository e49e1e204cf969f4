from __future__ import annotations

import json
import os
import re
import stat
from html import unescape
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.config import Settings
from bot.db.store import Store
from bot.github.manifest import (
    ALWAYS_SENT_EVENTS,
    ManifestStates,
    build_manifest,
    github_web_url,
    load_manifest_template,
    with_saved_credentials,
)
from bot.intake.app import create_app
from handlers import router
from tests.dbs import migrate_all
from tests.servers import running
from tests.test_github import PEM


def test_manifest_lists_the_permissions_and_events_shipmate_uses() -> None:
    manifest = build_manifest("https://shipmate.example.com/")
    assert manifest["hook_attributes"]["url"] == "https://shipmate.example.com/api/github/webhooks"
    assert manifest["redirect_url"] == "https://shipmate.example.com/setup/callback"
    permissions = load_manifest_template()["default_permissions"]
    assert permissions["contents"] == "write" and "workflows" not in permissions
    # Re-running a flaky run's failed jobs needs it; only that step's token carries it.
    assert permissions["actions"] == "write"
    assert "issue_comment" in manifest["default_events"]
    assert "deployment_status" in manifest["default_events"]


def test_web_url() -> None:
    assert github_web_url("https://api.github.com") == "https://github.com"
    assert github_web_url("https://ghe.corp/api/v3") == "https://ghe.corp"
    assert github_web_url("https://api.acme.ghe.com/") == "https://acme.ghe.com"


def test_registration_flow_saves_credentials_for_the_next_start(tmp_path: Path) -> None:
    conversions: list[str] = []

    async def convert(request: Request) -> Response:
        conversions.append(request.path_params["code"])
        return JSONResponse(
            {
                "id": 4242,
                "slug": "my-shipmate",
                "pem": PEM,
                "webhook_secret": "whsec",
                "client_id": "Iv1.x",
                "client_secret": "cs",
                "html_url": "https://github.com/apps/my-shipmate",
            },
            201,
        )

    github = Starlette(
        routes=[Route("/app-manifests/{code}/conversions", convert, methods=["POST"])]
    )
    with running(github, lifespan="off") as api:
        settings = Settings.load(data_dir=tmp_path, github_api_url=api)
        store = Store.from_settings(settings)
        migrate_all(store)
        with running(create_app(settings, store, router)) as base:
            page = httpx.get(base + "/").text
            assert "Register GitHub App" in page
            state = re.search(r"state=([^\"&]+)", page).group(1)  # type: ignore[union-attr]
            manifest = json.loads(
                unescape(re.search(r'name="manifest" value="([^"]+)"', page).group(1))
            )  # type: ignore[union-attr]
            assert manifest["hook_attributes"]["url"] == f"{base}/api/github/webhooks"
            assert httpx.get(f"{base}/setup/callback?code=abc&state=forged").status_code == 400
            done = httpx.get(f"{base}/setup/callback?code=abc&state={state}")
            assert done.status_code == 200 and "Registered <code>my-shipmate</code>" in done.text
            install = 'href="https://github.com/apps/my-shipmate/installations/new"'
            assert install in done.text  # where to go next: install it
            # Once registered, the callback refuses any further code, even with a fresh state.
            after = httpx.get(base + "/").text
            assert re.search(r"state=([^\"&]+)", after) is None  # no more registration
            assert install in after
            assert httpx.get(f"{base}/setup/callback?code=abc&state={state}").status_code == 409
    assert conversions == ["abc"]
    saved = tmp_path / "app-credentials.json"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    loaded = with_saved_credentials(Settings.load(data_dir=tmp_path))
    assert loaded.app_id == 4242 and loaded.app_slug == "my-shipmate"
    assert loaded.secrets == ["whsec"] and loaded.private_key_pem() == PEM
    # The environment wins over the saved file.
    explicit = with_saved_credentials(Settings.load(data_dir=tmp_path, webhook_secret="env"))
    assert explicit.secrets == ["env"]


def test_the_registration_page_says_github_must_reach_the_webhook_url(tmp_path: Path) -> None:
    settings = Settings.load(data_dir=tmp_path)
    store = Store.from_settings(settings)
    migrate_all(store)
    with running(create_app(settings, store, router)) as base:
        page = httpx.get(base + "/").text
    assert f"GitHub sends every event to <code>{base}/api/github/webhooks</code>" in page
    assert "SHIPMATE_PUBLIC_URL" in page and "tunnel" in page
    assert f"This page was opened at {base}, which GitHub cannot reach." in page
    public = Settings.load(data_dir=tmp_path, public_url="https://ship.example.com")
    with running(create_app(public, store, router)) as base:
        page = httpx.get(base + "/").text
    manifest = json.loads(unescape(re.search(r'name="manifest" value="([^"]+)"', page).group(1)))  # type: ignore[union-attr]
    assert manifest["hook_attributes"]["url"] == "https://ship.example.com/api/github/webhooks"
    assert manifest["redirect_url"] == "https://ship.example.com/setup/callback"
    assert "cannot reach" not in page
    store.dispose()


def test_an_organization_registers_through_its_own_form(tmp_path: Path) -> None:
    settings = Settings.load(data_dir=tmp_path)
    store = Store.from_settings(settings)
    migrate_all(store)
    with running(create_app(settings, store, router)) as base:
        page = httpx.get(base + "/").text
        form = re.search(r'<form action="/setup/organization" method="post">(.*?)</form>', page)
        assert form is not None and 'name="organization"' in form.group(1)
        fields = dict(re.findall(r'name="(manifest|state)" value="([^"]+)"', form.group(1)))
        sent = {name: unescape(value) for name, value in fields.items()}
        answer = httpx.post(
            f"{base}/setup/organization",
            data={**sent, "organization": "acme-labs"},
            follow_redirects=False,
        )
        # 307: the browser posts the same form (the manifest) on to GitHub's organization page.
        assert answer.status_code == 307
        assert answer.headers["location"] == (
            f"https://github.com/organizations/acme-labs/settings/apps/new?state={sent['state']}"
        )
        for org in ("acme/../x", "-acme", ""):
            bad = httpx.post(f"{base}/setup/organization", data={**sent, "organization": org})
            assert bad.status_code == 400, org
    store.dispose()


def test_app_yml_subscribes_to_exactly_the_routed_events() -> None:
    subscribed = load_manifest_template()["default_events"]
    assert len(subscribed) == len(set(subscribed))
    assert not set(subscribed) & ALWAYS_SENT_EVENTS  # GitHub refuses these in a manifest
    assert set(subscribed) == router.events() - ALWAYS_SENT_EVENTS


def test_callback_refuses_when_the_environment_configures_an_app(tmp_path: Path) -> None:
    settings = Settings.load(data_dir=tmp_path, app_id=1, private_key=PEM)
    store = Store.from_settings(settings)
    migrate_all(store)
    with running(create_app(settings, store, router)) as base:
        page = httpx.get(base + "/").text
        assert "Register GitHub App" not in page
        refused = httpx.get(f"{base}/setup/callback?code=abc&state=x")
        assert refused.status_code == 409 and "already registered" in refused.text
    assert not (tmp_path / "app-credentials.json").exists()
    store.dispose()


def test_manifest_states_are_single_use_expiring_and_bounded() -> None:
    now = [0.0]
    states = ManifestStates(ttl_seconds=60, limit=3, clock=lambda: now[0])
    first = states.issue()
    assert states.consume(first) and not states.consume(first)
    assert not states.consume(None) and not states.consume("forged")
    old = states.issue()
    now[0] = 61
    assert not states.consume(old)  # expired
    issued = [states.issue() for _ in range(5)]
    assert len(states) == 3  # the two oldest were dropped
    assert not states.consume(issued[0]) and not states.consume(issued[1])
    assert all(states.consume(state) for state in issued[2:])


def test_a_refused_or_forged_code_registers_nothing(tmp_path: Path) -> None:
    """GitHub's refusal is a 502 saying so; a code that is not one (it comes from the browser
    and would go into the request's path) never reaches GitHub."""
    conversions: list[str] = []

    async def refuse(request: Request) -> Response:
        conversions.append(request.url.path)
        return JSONResponse({"message": "Not Found"}, 404)

    github = Starlette(routes=[Route("/{path:path}", refuse, methods=["POST"])])
    with running(github, lifespan="off") as api:
        settings = Settings.load(data_dir=tmp_path, github_api_url=api)
        store = Store.from_settings(settings)
        store.migrate()
        with running(create_app(settings, store, router)) as base:
            for forged in ("x/../../user", "a%2F..%2Fb", "x y"):
                state = re.search(r"state=([^\"&]+)", httpx.get(base + "/").text).group(1)  # type: ignore[union-attr]
                answer = httpx.get(
                    f"{base}/setup/callback", params={"code": forged, "state": state}
                )
                assert answer.status_code == 400, forged
            state = re.search(r"state=([^\"&]+)", httpx.get(base + "/").text).group(1)  # type: ignore[union-attr]
            refused = httpx.get(f"{base}/setup/callback?code=abc&state={state}")
            assert refused.status_code == 502 and "refused the code (404)" in refused.text
    assert conversions == ["/app-manifests/abc/conversions"]
    assert not (tmp_path / "app-credentials.json").exists()
