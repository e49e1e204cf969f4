"""Registering the App through GitHub's manifest flow (as Probot does).

`/` shows a button that posts app.yml as a manifest to GitHub; GitHub sends the browser back to
`/setup/callback?code=…`, and the code is exchanged for the App's id, key and webhook secret,
which are saved (0600) in the data dir for the next start.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from githubkit import GitHub, UnauthAuthStrategy
from pydantic import SecretStr

from bot.config import ConfigError, Settings
from bot.github.retry import RetryPolicy

CREDENTIALS_FILE = "app-credentials.json"
# GitHub's manifest codes are short hex strings; anything else never reaches its API.
CODE = re.compile(r"[A-Za-z0-9_-]{1,100}")

# GitHub sends these to every App and refuses them in a manifest's default_events.
ALWAYS_SENT_EVENTS = frozenset(
    {
        "ping",
        "installation",
        "installation_repositories",
        "installation_target",
        "github_app_authorization",
        "meta",
    }
)


def load_manifest_template() -> dict[str, Any]:
    """app.yml from the installed package, else from the source tree."""
    packaged = resources.files("bot").joinpath("app.yml")
    if packaged.is_file():
        text = packaged.read_text()
    else:
        text = (Path(__file__).resolve().parents[2] / "app.yml").read_text()
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("app.yml must be a mapping")
    return data


def build_manifest(base_url: str, template: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest with this server's addresses filled in."""
    manifest = dict(template if template is not None else load_manifest_template())
    base = base_url.rstrip("/")
    manifest["url"] = manifest.get("url") or base
    manifest["hook_attributes"] = {"url": f"{base}/api/github/webhooks", "active": True}
    manifest["redirect_url"] = f"{base}/setup/callback"
    return manifest


def github_web_url(api_url: str) -> str:
    """github.com for the public API; the server itself for GitHub Enterprise Server
    (`…/api/v3`); `<sub>.ghe.com` for Enterprise Cloud with data residency (`api.<sub>.ghe.com`)."""
    api = api_url.rstrip("/")
    if api in ("https://api.github.com", "http://api.github.com"):
        return "https://github.com"
    scheme, _, host = api.partition("://")
    if host.lower().startswith("api.") and host.lower().endswith(".ghe.com"):
        return f"{scheme}://{host[4:]}"
    return api.removesuffix("/api/v3")


def new_state() -> str:
    return secrets.token_urlsafe(24)


class ManifestStates:
    """The `state` values handed out with the registration form: each valid once, for
    `ttl_seconds`, and at most `limit` at a time (the oldest are dropped first), so a page
    reloaded forever cannot grow memory."""

    def __init__(
        self,
        *,
        ttl_seconds: float = 3600.0,
        limit: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.limit = limit
        self.clock = clock
        self._issued: dict[str, float] = {}

    def issue(self) -> str:
        self._expire()
        while len(self._issued) >= self.limit:
            del self._issued[next(iter(self._issued))]
        state = new_state()
        self._issued[state] = self.clock()
        return state

    def consume(self, state: str | None) -> bool:
        """True once for a state issued less than `ttl_seconds` ago."""
        self._expire()
        return state is not None and self._issued.pop(state, None) is not None

    def __len__(self) -> int:
        return len(self._issued)

    def _expire(self) -> None:
        oldest_allowed = self.clock() - self.ttl_seconds
        for state, issued_at in list(self._issued.items()):
            if issued_at > oldest_allowed:
                break
            del self._issued[state]


async def convert_code(api_url: str, code: str, retry: RetryPolicy | None = None) -> dict[str, Any]:
    """GitHub's answer to the callback's code (`POST /app-manifests/{code}/conversions`,
    unauthenticated): the new App's id, slug, key and webhook secret. Raises githubkit's
    `RequestFailed` when GitHub refuses the code, `ValueError` for a code that is not one (it
    comes from the browser and goes into the request's path)."""
    if not CODE.fullmatch(code):
        raise ValueError("not a manifest code")
    github = GitHub(UnauthAuthStrategy(), base_url=api_url, auto_retry=False, http_cache=False)
    response = await (retry or RetryPolicy()).call(
        lambda: github.rest.apps.async_create_from_manifest(code)
    )
    answer: dict[str, Any] = response.raw_response.json()
    return answer


def save_credentials(data_dir: Path, conversion: dict[str, Any]) -> Path:
    """Write what GitHub returned for the manifest code, readable by this user only."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / CREDENTIALS_FILE
    record = {
        "app_id": conversion["id"],
        "app_slug": conversion.get("slug"),
        "private_key": conversion["pem"],
        "webhook_secret": conversion.get("webhook_secret"),
        "client_id": conversion.get("client_id"),
        "client_secret": conversion.get("client_secret"),
        "html_url": conversion.get("html_url"),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle)
    os.chmod(path, 0o600)
    return path


def is_registered(settings: Settings) -> bool:
    """An App is configured, or one was registered here and waits for a restart."""
    return settings.has_app_credentials or (settings.data_dir / CREDENTIALS_FILE).is_file()


def load_credentials(data_dir: Path) -> dict[str, Any] | None:
    """The saved registration, or None when there is none. Raise `ConfigError` naming the file
    when it cannot be read or is not the JSON object `save_credentials` writes."""
    path = data_dir / CREDENTIALS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read it ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            str(path), f"not valid JSON ({exc}); fix it, or delete it to register the App again"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "not a JSON object; delete it to register the App again")
    return data


def with_saved_credentials(settings: Settings) -> Settings:
    """Fill App settings the environment leaves unset from a manifest registration, then
    require a complete App (an id and its key) or none at all (setup mode)."""
    saved = load_credentials(settings.data_dir)
    merged = settings if saved is None else _merge(settings, saved)
    if merged.app_id is not None and not merged.has_app_credentials:
        raise ConfigError(
            "SHIPMATE_PRIVATE_KEY",
            "not set (nor SHIPMATE_PRIVATE_KEY_PATH) although SHIPMATE_APP_ID is; "
            "set the App's key, or unset SHIPMATE_APP_ID to register an App at /",
        )
    return merged


def _merge(settings: Settings, saved: dict[str, Any]) -> Settings:
    path = settings.data_dir / CREDENTIALS_FILE
    update: dict[str, Any] = {}
    if settings.app_id is None and saved.get("app_id"):
        try:
            update["app_id"] = int(saved["app_id"])
        except (TypeError, ValueError):
            raise ConfigError(str(path), "app_id is not a number") from None
    if settings.app_slug is None and saved.get("app_slug"):
        update["app_slug"] = str(saved["app_slug"])
    if (
        settings.private_key is None
        and settings.private_key_path is None
        and saved.get("private_key")
    ):
        update["private_key"] = SecretStr(str(saved["private_key"]))
    if settings.github_client_id is None and saved.get("client_id"):
        update["github_client_id"] = str(saved["client_id"])
    if settings.github_client_secret is None and saved.get("client_secret"):
        update["github_client_secret"] = SecretStr(str(saved["client_secret"]))
    if not settings.webhook_secret and saved.get("webhook_secret"):
        update["webhook_secret"] = [SecretStr(str(saved["webhook_secret"]))]
    if not update:
        return settings
    merged = settings.model_copy(update=update)
    if "private_key" in update:
        try:
            merged.private_key_pem()
        except ConfigError as exc:
            raise ConfigError(f"{path} (private_key)", exc.reason) from None
    return merged
