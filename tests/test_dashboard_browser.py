"""The dashboard in a real browser: Debian's Chromium driven by Playwright (nothing downloaded),
against the real server after a real run (GitHub and model stand-ins, bubblewrap sandbox). It
signs in (the admin token, and with GitHub through the App's OAuth client), lists runs, opens a
run and its transcript, redelivers a delivery through GitHub's redelivery API, retries a dead
job; any console error fails the test. Screenshots go to docs/ with UPDATE_SCREENSHOTS=1 (the
README shows them)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.scripts import edit_add
from tests.test_e2e_github import REPO, World
from tests.test_e2e_github import world as world

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, sync_playwright

from standins.anthropic import Turn

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parent.parent / "docs"
SHOTS = Path(tempfile.gettempdir()) / "shipmate-dashboard-screenshots"
TOKEN = "dashboard-admin-token-for-tests"
CLIENT_ID, CLIENT_SECRET = "Iv1.dashboard-tests", "dashboard-client-secret-for-tests"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs chromium"),
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def admin_world(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> World:
    monkeypatch.setenv("SHIPMATE_ADMIN_TOKEN", TOKEN)
    # The App's OAuth client, as the manifest registration saves it; the stand-in learns it.
    monkeypatch.setenv("SHIPMATE_GITHUB_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SHIPMATE_GITHUB_CLIENT_SECRET", CLIENT_SECRET)
    world: World = request.getfixturevalue("world")
    (app,) = world.gh.apps.values()
    world.gh.oauth.client_for(app, CLIENT_ID, CLIENT_SECRET)
    return world


@contextmanager
def browser() -> Iterator[tuple[Page, list[str]]]:
    """A fresh headless Chromium tab and the console errors it logs. Playwright's sync API
    keeps an event loop running, so the world's work is done before it starts."""
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        yield tab, errors
        browser.close()


def a_real_run(world: World) -> None:
    world.model.script(
        [
            Turn.text("1. Run the tests.\n2. Fix add()."),
            Turn.tool_use("bash", {"command": "python3 -m unittest -q 2>&1 | tail -1"}),
            edit_add(),
            Turn.text("Fixed add(); the tests pass."),
        ]
    )
    world.comment("/shipmate fix")
    world.work()


def a_dead_job(world: World) -> int:
    job_id = world.queue.enqueue("run", {"repo": "octo/widgets"}, max_attempts=1)
    assert job_id is not None
    world.work()  # the payload is not a run: it fails once, and once is its limit
    assert world.queue.get(job_id)["state"] == "dead"  # type: ignore[index]
    return job_id


def shot(tab: Page, name: str) -> None:
    """A screenshot: into docs/ (what the README shows) with UPDATE_SCREENSHOTS=1,
    else beside the test's other temporary files, so a test run leaves the tree as it was."""
    folder = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else SHOTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"dashboard-{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000


def sign_in(tab: Page, base: str) -> None:
    tab.goto(f"{base}/dashboard/")
    assert "/dashboard/login" in tab.url
    tab.fill("input[name=token]", "not the token")
    tab.click("button[type=submit]")
    assert "not the admin token" in tab.content()
    tab.fill("input[name=token]", TOKEN)
    tab.click("button[type=submit]")
    tab.wait_for_selector("table#runs")


def test_sign_in_list_runs_open_a_run_and_retry_a_dead_job(admin_world: World) -> None:
    a_real_run(admin_world)
    dead = a_dead_job(admin_world)
    with browser() as (tab, errors):
        walk_the_dashboard(admin_world, tab, dead)
        assert errors == []


def walk_the_dashboard(admin_world: World, tab: Page, dead: int) -> None:
    base = admin_world.base
    sign_in(tab, base)
    (run,) = [r for r in admin_world.store.views.runs(None) if r["kind"] == "fix"]
    rows = tab.locator("table#runs tr")
    assert rows.count() == 2  # the header and the one run
    assert "octo/widgets" in rows.nth(1).inner_text() and "completed" in rows.nth(1).inner_text()
    shot(tab, "runs")
    tab.click(f"text={run['id']}")
    tab.wait_for_selector("#transcript details")
    assert tab.locator("#transcript details").count() >= 4  # model turns and tool calls
    first_tool = tab.locator("#transcript details.tool").first
    assert not first_tool.evaluate("d => d.open")  # collapsed by default
    first_tool.locator("summary").click()
    assert first_tool.evaluate("d => d.open")
    assert "python3 -m unittest" in first_tool.inner_text()
    content = tab.content()
    assert "return a + b" in content  # the diff
    assert "comment.edit" in content or "pull_request.create" in content  # GitHub actions
    shot(tab, "run")
    tab.click("text=Queue")
    tab.wait_for_selector("table#jobs")
    assert "dead" in tab.locator("table#jobs").inner_text()
    shot(tab, "queue")
    tab.locator(f"form[action$='/queue/{dead}/retry'] button").click()
    tab.wait_for_selector(".flash")
    assert f"Job {dead} queued again" in tab.inner_text(".flash")
    assert admin_world.queue.get(dead)["state"] == "waiting"  # type: ignore[index]
    redeliver_the_comment(admin_world, tab)
    for name in ("Repositories", "Costs"):
        tab.click(f"header >> text={name}")
        tab.wait_for_selector("main h1")
    assert tab.locator("svg.chart").count() == 1
    shot(tab, "costs")
    assert TOKEN not in tab.content()


def redeliver_the_comment(world: World, tab: Page) -> None:
    """Redeliver the `/shipmate fix` comment: GitHub (the stand-in) sends the same delivery
    again, which Shipmate answers as a duplicate: nothing runs twice."""
    (sent,) = [s for s in world.gh.hooks.sent if s.event == "issue_comment"]
    tab.click("header >> text=Deliveries")
    tab.wait_for_selector("table#deliveries")
    shot(tab, "deliveries")
    tab.locator(f"form[action$='/deliveries/{sent.guid}/redeliver'] button").click()
    tab.wait_for_selector(".flash")
    assert f"GitHub is sending {sent.guid} again." in tab.inner_text(".flash")
    again = world.gh.hooks.sent[-1]
    assert again.redelivery and again.guid == sent.guid and again.body == sent.body
    assert again.status_code == 200  # the duplicate: recorded once, queued once
    assert len([r for r in world.store.views.runs(None) if r["kind"] == "fix"]) == 1


def a_recorded_run(world: World, repo: str) -> str:
    run_id = f"run-{repo.replace('/', '-')}"
    world.store.record_run(run_id, repo=repo, number=1, status="completed", finished_at=None)
    return run_id


def sign_in_with_github(tab: Page, base: str, world: World, login: str) -> None:
    world.gh.oauth.signed_in = login  # who the browser is signed in to GitHub as
    tab.goto(f"{base}/dashboard/login")
    tab.click("text=Sign in with GitHub")
    tab.wait_for_selector("table#runs")
    assert tab.inner_text("header .who") == login


def test_sign_in_with_github_shows_the_repositories_one_may_write_to(admin_world: World) -> None:
    world = admin_world
    world.gh.create_repo("octo/private", {"README.md": "x\n"})
    world.gh.installations[world.installation_id].repositories.append("octo/private")
    world.gh.add_collaborator("octo/private", "bob", "write")
    world.gh.add_collaborator(REPO, "bob", "read")  # reads widgets, may not write to it
    widgets, private = a_recorded_run(world, REPO), a_recorded_run(world, "octo/private")
    with browser() as (tab, errors):
        sign_in_with_github(tab, world.base, world, "alice")
        shown = tab.locator("table#runs a[href*='/runs/']").all_inner_texts()
        assert shown == [widgets]
        assert tab.locator("header >> text=Queue").count() == 0  # the queue is the admins'
        queue = tab.request.get(f"{world.base}/dashboard/queue")
        assert queue.status == 403 and "admins only" in queue.text()
        tab.click("header button:has-text('Sign out')")
        tab.wait_for_selector("text=Sign in to Shipmate")
        sign_in_with_github(tab, world.base, world, "bob")
        assert tab.locator("table#runs a[href*='/runs/']").all_inner_texts() == [private]
        assert tab.request.get(f"{world.base}/dashboard/runs/{widgets}").status == 404
        assert errors == []
    # The browser was sent to GitHub with the client's id, never its secret.
    sent_to_github = [f"{r.path}?{r.query}" for r in world.gh.requests if r.method == "GET"]
    assert any(CLIENT_ID in url for url in sent_to_github)
    assert not any(CLIENT_SECRET in url for url in sent_to_github)


def test_forms_need_the_sessions_csrf_token(admin_world: World) -> None:
    dead = a_dead_job(admin_world)
    with browser() as (tab, errors):
        sign_in(tab, admin_world.base)
        cookies = {c["name"]: c["value"] for c in tab.context.cookies()}
        assert errors == []
    forged = httpx.post(
        f"{admin_world.base}/dashboard/queue/{dead}/retry", data={"csrf": "guess"}, cookies=cookies
    )
    assert forged.status_code == 403
    assert admin_world.queue.get(dead)["state"] == "dead"  # type: ignore[index]
    anonymous = httpx.get(f"{admin_world.base}/dashboard/queue", follow_redirects=False)
    assert anonymous.status_code == 303 and "/dashboard/login" in anonymous.headers["location"]
    outside = httpx.post(
        f"{admin_world.base}/dashboard/login",
        data={"csrf": "x", "token": TOKEN, "next": "https://evil.example/"},
        cookies=cookies,
        follow_redirects=False,
    )
    assert outside.status_code == 200 and "form expired" in outside.text  # no CSRF, no sign-in
