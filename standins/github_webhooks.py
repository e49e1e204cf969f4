"""The GitHub stand-in's webhook emitter: a recorded delivery (shared/fixtures/github-webhooks/)
reshaped to the stand-in's records, signed as GitHub signs, and sent to an app."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from standins import webhook_payloads as payloads
from standins.github_core import Core

if TYPE_CHECKING:
    from standins.github_hooks import HookDeliveries

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "github-webhooks"


class Webhooks(Core):
    hooks: HookDeliveries  # every delivery sent, for GitHub's delivery API

    def delivery(
        self,
        event: str,
        action: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        *,
        secret: str,
        fixture: str | None = None,
        repo: str | None = None,
        sender: str | None = None,
        pull: int | None = None,
        head_sha: str | None = None,
        installation_id: int | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of a delivery: the recorded payload reshaped by the named fields
        (`repo` sets full_name, name, owner.login and, if the stand-in has it, id), then
        deep-merged with `overrides`; signed with `secret` as GitHub signs (sha256 and sha1)."""
        payload = payloads.recorded(FIXTURES, event, action, fixture)
        known = self.state.repos.get(repo) if repo else None
        payloads.reshape(
            payload,
            repo=repo,
            repo_id=known.id if known else None,
            sender=sender,
            pull=pull,
            head_sha=head_sha,
            installation_id=installation_id,
        )
        payloads.merge(payload, overrides or {})
        body = json.dumps(payload).encode()
        installation = payload.get("installation") or {}
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/standin",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "1",
            "X-GitHub-Hook-Installation-Target-ID": str(installation.get("id", "")),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
            "X-Hub-Signature-256": "sha256="
            + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        }
        return headers, body

    def emit(
        self,
        event: str,
        action: str | None,
        overrides: Mapping[str, Any] | None = None,
        *,
        to: str,
        secret: str,
        fixture: str | None = None,
        repo: str | None = None,
        sender: str | None = None,
        pull: int | None = None,
        head_sha: str | None = None,
        installation_id: int | None = None,
    ) -> httpx.Response:
        headers, body = self.delivery(
            event,
            action,
            overrides,
            secret=secret,
            fixture=fixture,
            repo=repo,
            sender=sender,
            pull=pull,
            head_sha=head_sha,
            installation_id=installation_id,
        )
        started = time.monotonic()
        answer = httpx.post(to, content=body, headers=headers, timeout=30)
        self.hooks.record(to, headers, body, json.loads(body), answer, time.monotonic() - started)
        return answer
