"""The setup pages at `/`: registering the App through GitHub's manifest flow (for a personal
account or an organization), what GitHub needs to reach this server, and, once registered,
where to install the App. Pure: the values in, HTML out."""

from __future__ import annotations

import html
import ipaddress
import json
import re
from typing import Any
from urllib.parse import urlsplit

# GitHub's rule for account and organization names.
ACCOUNT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?")
STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:760px;margin:32px auto;padding:0 16px}"
    "code{background:#f3f4f6;padding:1px 4px}.warn{background:#fff8c5;border:1px solid #d4a72c;"
    "padding:8px 12px}form{margin:8px 0 20px}"
)


def _page(body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Shipmate</title>"
        f"<style>{STYLE}</style></head><body><h1>Shipmate</h1>{body}</body></html>"
    )


def unreachable(base_url: str) -> bool:
    """An address GitHub cannot send webhooks to: loopback, private, link-local, or a name
    that only this network knows (localhost, *.local, *.internal)."""
    host = (urlsplit(base_url).hostname or "").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or host.endswith((".localhost", ".local", ".internal"))
    return address.is_loopback or address.is_private or address.is_link_local


def _reach(hook_url: str, base_url: str, public_url: str | None) -> str:
    hook = html.escape(hook_url)
    text = (
        "<h2>GitHub must reach this server</h2>"
        f"<p>GitHub sends every event to <code>{hook}</code>, from the internet. Run Shipmate "
        "at a public address, or put a tunnel in front of it (for example "
        "<code>cloudflared tunnel --url http://127.0.0.1:3000</code> or "
        "<code>ngrok http 3000</code>), and start it with <code>SHIPMATE_PUBLIC_URL</code> set "
        "to that public address <em>before</em> you register: the address is written into the "
        "App (you can change it later in the App's settings).</p>"
    )
    if public_url is None and unreachable(base_url):
        text += (
            f"<p class='warn'><strong>This page was opened at {html.escape(base_url)}, which "
            "GitHub cannot reach.</strong> Set <code>SHIPMATE_PUBLIC_URL</code> and restart "
            "Shipmate, or the App will be registered with an address no webhook arrives at.</p>"
        )
    return text


def registration_page(
    manifest: dict[str, Any], web_url: str, state: str, *, base_url: str, public_url: str | None
) -> str:
    """Until the App exists: what GitHub needs, and the forms that register it for your own
    account or for an organization (sent to GitHub by `/setup/organization`)."""
    action = html.escape(f"{web_url}/settings/apps/new?state={state}", quote=True)
    value = html.escape(json.dumps(manifest), quote=True)
    fields = f'<input type="hidden" name="manifest" value="{value}">'
    body = (
        "<p>No GitHub App is configured yet. Register one from this server's manifest: GitHub "
        "creates the App, sends you back here, and Shipmate saves its credentials.</p>"
        f"{_reach(manifest['hook_attributes']['url'], base_url, public_url)}"
        "<h2>Register</h2><p>For your personal account:</p>"
        f'<form action="{action}" method="post">{fields}'
        '<button type="submit">Register GitHub App</button></form>'
        "<p>For an organization (you need to be one of its owners):</p>"
        f'<form action="/setup/organization" method="post">{fields}'
        f'<input type="hidden" name="state" value="{html.escape(state, quote=True)}">'
        '<label>Organization <input name="organization" required '
        'pattern="[A-Za-z0-9][A-Za-z0-9\\-]{0,38}" placeholder="my-org"></label> '
        '<button type="submit">Register GitHub App for the organization</button></form>'
    )
    return _page(body)


def install_url(web_url: str, slug: str | None, html_url: str | None = None) -> str | None:
    """Where the App is installed on repositories: its page's `installations/new`."""
    if html_url:
        return f"{html_url.rstrip('/')}/installations/new"
    return f"{web_url}/apps/{slug}/installations/new" if slug else None


def _install_link(url: str | None) -> str:
    if url is None:
        return "install it on your repositories (from the App's page on GitHub)"
    return f'<a href="{html.escape(url, quote=True)}">install it on your repositories</a>'


def registered_page(install: str | None) -> str:
    return _page(
        f"<p>The GitHub App is configured: {_install_link(install)}, then comment "
        "<code>/shipmate help</code> on an issue.</p>"
    )


def registered_now_page(slug: str | None, install: str | None) -> str:
    """Right after the manifest's code was exchanged and the credentials saved."""
    name = f"<code>{html.escape(slug)}</code>" if slug else "the App"
    return _page(
        f"<p>Registered {name}. Restart <code>shipmate serve</code> to use it, then "
        f"{_install_link(install)}.</p>"
    )
