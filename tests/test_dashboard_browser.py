"""The dashboard in a real browser: Debian's Chromium driven by Playwright (nothing downloaded),
against the real server after a real run (GitHub and model stand-ins, bubblewrap sandbox). It
signs in, lists runs, opens a run and its transcript, retries a dead job; any console error
fails the test. Screenshots go to docs/ (the README shows them)."""

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
from tests.test_e2e_github import World
from tests.test_e2e_github import world as world

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, sync_playwright

from standins.anthropic import Turn

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parent.parent / "docs"
SHOTS = Path(tempfile.gettempdir()) / "shipmate-dashboard-screenshots"
TOKEN = "dashboard-admin-token-for-tests"
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
    world: World = request.getfixturevalue("world")
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
    for name in ("Deliveries", "Repositories", "Costs"):
        tab.click(f"header >> text={name}")
        tab.wait_for_selector("main h1")
    assert tab.locator("svg.chart").count() == 1
    shot(tab, "costs")
    assert TOKEN not in tab.content()


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
