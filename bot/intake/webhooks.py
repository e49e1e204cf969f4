"""Webhook deliveries, sans I/O: signature check, header and body validation, cheap extraction of
the fields the intake needs. The full parse into githubkit models happens in the worker."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
import simdjson

from bot.intake.shapes import shape_mismatch

MAX_BODY_BYTES = 25 * 1024 * 1024


class WebhookError(Exception):
    """A delivery refused. `status` is the HTTP status; the message never holds a secret."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class IncomingDelivery:
    delivery_id: str
    event: str
    action: str | None
    # The JSON text of the payload (for a form-encoded delivery, the `payload` field).
    raw_json: bytes
    installation_id: int | None
    repository: str | None
    # The verified HMAC of the body: the same body under another delivery id is a replay.
    digest: str = ""
    # The issue or pull request the event is about (`issue.number`, `pull_request.number`).
    number: int | None = None


def verify_signature(body: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    """True when `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under any secret."""
    if not header or not header.startswith("sha256="):
        return False
    given = header[len("sha256=") :].strip().lower()
    matched = False
    # Check every secret, without stopping early, so timing says nothing about which matched.
    for secret in secrets:
        expected = hmac.digest(secret.encode(), body, "sha256").hex()
        matched |= hmac.compare_digest(expected, given)
    return matched


def sign(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature-256` value GitHub would send for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name) or headers.get(name.lower())
    return value.strip() if value else None


def parse_request(
    headers: Mapping[str, str], body: bytes, secrets: Sequence[str]
) -> IncomingDelivery:
    """Validate a delivery completely or raise `WebhookError` (400 or 401)."""
    event = _header(headers, "X-GitHub-Event")
    delivery_id = _header(headers, "X-GitHub-Delivery")
    if not event:
        raise WebhookError(400, "missing X-GitHub-Event header")
    if not delivery_id:
        raise WebhookError(400, "missing X-GitHub-Delivery header")
    if len(delivery_id) > 100:
        raise WebhookError(400, "X-GitHub-Delivery header is too long")
    if not secrets:
        raise WebhookError(401, "no webhook secret is configured, so no delivery can be verified")
    signature = _header(headers, "X-Hub-Signature-256")
    if signature is None:
        raise WebhookError(401, "missing X-Hub-Signature-256 header")
    if not verify_signature(body, signature, secrets):
        raise WebhookError(401, "X-Hub-Signature-256 does not match the body")
    raw_json = _json_text(headers, body)
    action, installation_id, full_name, number = _fields(raw_json, event)
    return IncomingDelivery(  # the headers' fields, then the body's
        delivery_id=delivery_id,
        event=event,
        digest=signature[len("sha256=") :].strip().lower(),
        raw_json=raw_json,
        action=action,
        installation_id=installation_id,
        repository=full_name,
        number=number,
    )


# The intake must check that the whole body is JSON with no key repeated in any object (parsers
# disagree on such a body: simdjson reads the first value, orjson and json the last), and needs
# four fields of it. orjson.loads parses it (~15 us for a 15 KB delivery); when orjson writes
# back exactly the bytes received, those bytes hold no repeated key (orjson's objects cannot),
# and the fields come from what orjson built: ~20 us in all. Other bodies (another spacing or
# escaping, or what orjson refuses) take the exact path: simdjson's document, which keeps every
# member of an object, against orjson's, then the standard library where they differ.
_parsers = threading.local()
# A parser keeps buffers as large as the largest document it read; larger ones get their own.
_REUSED_PARSER_LIMIT = 1024 * 1024


Fields = tuple[str | None, int | None, str | None, int | None]


def _fields(raw_json: bytes, event: str) -> Fields:
    """(action, installation.id, repository.full_name, the issue's or pull request's number)
    of a JSON object, each None when absent or not of its type; WebhookError (400) when
    `raw_json` is not a JSON object, repeats a key in any object, or does not have the shape
    of `event`."""
    try:
        payload = orjson.loads(raw_json)
    except orjson.JSONDecodeError:
        return _fields_exactly(raw_json, event, None)
    if not isinstance(payload, dict):
        return _fields_exactly(raw_json, event, None)
    written = orjson.dumps(payload)
    if written == raw_json:
        return _fields_of(payload, event)
    return _fields_exactly(raw_json, event, written)


def _fields_exactly(raw_json: bytes, event: str, written: bytes | None) -> Fields:
    """`_fields` through simdjson: validates it (UTF-8 included) and reads the fields without
    building the document's Python objects; `written` is orjson's text of the body, if made."""
    parser = getattr(_parsers, "parser", None)
    if parser is None or len(raw_json) > _REUSED_PARSER_LIMIT:
        parser = simdjson.Parser()
        if len(raw_json) <= _REUSED_PARSER_LIMIT:
            _parsers.parser = parser
    try:
        document = parser.parse(raw_json)
    except ValueError as exc:  # UnicodeDecodeError too
        raise WebhookError(400, f"body is not valid JSON: {exc}") from None
    except RuntimeError:
        # What simdjson does not take (an integer past 64 bits; a parser whose last document
        # is still referenced somewhere) is left to the standard library, which also names
        # repeated keys.
        try:
            return _fields_of(_loads(raw_json), event)
        except RepeatedKey as exc:
            raise WebhookError(400, f"body repeats the key {exc.key!r} in one object") from None
    if not isinstance(document, simdjson.Object):
        del document  # nothing may keep the parser's document alive (see RuntimeError above)
        raise WebhookError(400, "body must be a JSON object")
    try:
        repeated = first_repeated_key(document, raw_json, written)
        if repeated is not None:
            raise WebhookError(400, f"body repeats the key {repeated!r} in one object")
        return _fields_of(document, event)
    finally:
        del document


def _loads(raw_json: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(
            raw_json, object_pairs_hook=_unique, parse_constant=_refuse, parse_float=_finite
        )
    except RepeatedKey:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError too
        raise WebhookError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WebhookError(400, "body must be a JSON object")
    return payload


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"{text} is out of range")
    return number


class RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(f"it repeats the key {key!r} in one object")
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RepeatedKey(key)
            seen.add(key)
    return mapping


def first_repeated_key(
    document: simdjson.Object, raw_json: bytes, written: bytes | None = None
) -> str | None:
    """A key that some object of `raw_json` holds twice, or None. Parsers disagree on such a
    body (simdjson reads the first value, orjson and json the last), so it is refused: then the
    fields routed on and the payload handled are the same whichever parser reads them.

    simdjson's document keeps every member, orjson's keeps one per key; both write the same
    minimal JSON, so equal texts mean no key repeats (`written`: orjson's text, if made).
    Texts that differ (a repeat, or numbers written differently) go to the exact check."""
    try:
        minimal: Any = document.mini  # bytes (its stub says str)
        if minimal == (written or orjson.dumps(orjson.loads(raw_json))):
            return None
    except orjson.JSONDecodeError:
        pass
    try:
        _loads(raw_json)
    except RepeatedKey as exc:
        return exc.key
    except WebhookError:
        pass
    return None


def _fields_of(document: simdjson.Object | dict[str, Any], event: str) -> Fields:
    mapping = (simdjson.Object, dict)
    # A key that simdjson does not find costs a C++ exception (~2 us); the top level's keys are
    # few, so look there first ("installation" is absent from many deliveries).
    present = set(document.keys())
    action, installation, repository, issue, pull = (
        document[key] if key in present else None
        for key in ("action", "installation", "repository", "issue", "pull_request")
    )
    inner = (
        set(installation.keys())
        if event == "installation" and isinstance(installation, mapping)
        else set()
    )
    mismatch = shape_mismatch(event, present, inner)
    if mismatch is not None:
        raise WebhookError(400, mismatch)
    installation_id = installation.get("id") if isinstance(installation, mapping) else None
    full_name = repository.get("full_name") if isinstance(repository, mapping) else None
    thread = issue if isinstance(issue, mapping) else pull
    number = thread.get("number") if isinstance(thread, mapping) else None
    return (
        action if isinstance(action, str) else None,
        installation_id if isinstance(installation_id, int) else None,
        full_name if isinstance(full_name, str) else None,
        number if isinstance(number, int) and not isinstance(number, bool) else None,
    )


def _json_text(headers: Mapping[str, str], body: bytes) -> bytes:
    content_type = (_header(headers, "Content-Type") or "application/json").lower()
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            fields = parse_qs(body.decode("utf-8"), strict_parsing=False)
        except UnicodeDecodeError:
            raise WebhookError(400, "form body is not UTF-8") from None
        if "payload" not in fields:
            raise WebhookError(400, "form-encoded body has no payload field")
        return fields["payload"][0].encode()
    if content_type.startswith("application/json") or "json" in content_type:
        return body
    raise WebhookError(400, f"unsupported Content-Type {content_type!r}; send application/json")
