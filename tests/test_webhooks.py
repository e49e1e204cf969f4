from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from bot.intake.webhooks import WebhookError, parse_request, sign, verify_signature

BODY = json.dumps(
    {
        "action": "created",
        "comment": {"body": "hi"},
        "issue": {"number": 1},
        "installation": {"id": 9},
        "repository": {"full_name": "o/r"},
    }
).encode()


def _headers(body: bytes = BODY, secret: str = "s1", **extra: str) -> dict[str, str]:
    headers = {
        "X-GitHub-Event": "issue_comment",
        "X-GitHub-Delivery": "abc-123",
        "X-Hub-Signature-256": sign(body, secret),
        "Content-Type": "application/json",
    }
    headers.update(extra)
    return headers


def test_valid_delivery_is_parsed() -> None:
    delivery = parse_request(_headers(), BODY, ["s1"])
    assert (delivery.event, delivery.action, delivery.delivery_id) == (
        "issue_comment",
        "created",
        "abc-123",
    )
    assert delivery.installation_id == 9 and delivery.repository == "o/r"
    assert delivery.raw_json == BODY


def test_every_configured_secret_is_tried() -> None:
    assert verify_signature(BODY, sign(BODY, "old"), ["new", "old"])
    assert not verify_signature(BODY, sign(BODY, "other"), ["new", "old"])
    assert not verify_signature(BODY, "sha1=abc", ["new"])
    assert not verify_signature(BODY, None, ["new"])


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({"X-GitHub-Event": ""}, 400, "X-GitHub-Event"),
        ({"X-GitHub-Delivery": ""}, 400, "X-GitHub-Delivery"),
        ({"X-Hub-Signature-256": ""}, 401, "missing X-Hub-Signature-256"),
        ({"X-Hub-Signature-256": "sha256=00"}, 401, "does not match"),
        ({"Content-Type": "text/plain"}, 400, "Content-Type"),
    ],
)
def test_bad_headers(headers: dict[str, str], status: int, message: str) -> None:
    with pytest.raises(WebhookError) as info:
        parse_request(_headers(**headers), BODY, ["s1"])
    assert info.value.status == status and message in info.value.message
    assert "s1" not in info.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1]", "object"),
        (b'"text"', "object"),
        (b"", "not valid JSON"),
        (b'{"a": 1} {}', "not valid JSON"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": 1e400}', "not valid JSON"),
        (b'{"a": "\\q"}', "not valid JSON"),
        (b'{"a": "\xff\xfe"}', "not valid JSON"),  # not UTF-8
        (b'{"a": 123456789012345678901234567890, "b": [}', "not valid JSON"),
    ],
)
def test_bad_bodies(body: bytes, message: str) -> None:
    with pytest.raises(WebhookError) as info:
        parse_request(_headers(body), body, ["s1"])
    assert info.value.status == 400 and message in info.value.message


@pytest.mark.parametrize(
    "body",
    [
        b'{"action": 7, "installation": "x", "repository": {"full_name": ["o/r"]}}',
        b'{"installation": {"id": 9.5}, "repository": null}',
    ],
)
def test_fields_of_another_type_read_as_absent(body: bytes) -> None:
    # An event nobody routes: its payload has no shape to keep.
    delivery = parse_request(_headers(body, **{"X-GitHub-Event": "push"}), body, ["s1"])
    assert (delivery.action, delivery.installation_id, delivery.repository) == (None, None, None)


@pytest.mark.parametrize(
    ("event", "payload", "number"),
    [
        ("issue_comment", {"issue": {"number": 5}, "comment": {"id": 1}}, 5),
        ("pull_request", {"pull_request": {"number": 8}}, 8),
        ("issues", {"issue": {"number": "5"}}, None),
        ("issues", {"issue": {"number": True}}, None),
        ("pull_request", {"pull_request": [8]}, None),
        ("check_suite", {"check_suite": {"pull_requests": [{"number": 3}]}}, None),
    ],
)
def test_the_issue_or_pull_request_number_is_read(
    event: str, payload: dict[str, object], number: int
) -> None:
    # Each payload of its event's shape (bot/intake/shapes.py), so the intake takes it.
    payload = {"action": "created", **payload}
    body = json.dumps(payload).encode()
    headers = _headers(body, **{"X-GitHub-Event": event})
    assert parse_request(headers, body, ["s1"]).number == number
    big = json.dumps({**payload, "n": 10**30}).encode()  # the orjson path
    headers = _headers(big, **{"X-GitHub-Event": event})
    assert parse_request(headers, big, ["s1"]).number == number


def test_what_the_fast_parser_does_not_take_is_decided_by_orjson() -> None:
    from bot.intake.webhooks import _parsers

    big = (
        b'{"action": "created", "comment": {}, "issue": {}, "installation": {"id": 9},'
        b' "n": 123456789012345678901234567890}'
    )
    assert parse_request(_headers(big), big, ["s1"]).installation_id == 9
    # The thread's parser cannot parse again while a part of its last document lives.
    held = _parsers.parser.parse(b'{"a": {"b": 1}}').get("a")
    delivery = parse_request(_headers(), BODY, ["s1"])
    assert (delivery.action, delivery.installation_id, delivery.repository) == ("created", 9, "o/r")
    assert held.get("b") == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"action":"created","action":"deleted","issue":{"number":1}}',
        b'{"action":"created","issue":{"number":1,"number":2}}',
        b'{"action":"created","issue":{"number":1},"x":[{"a":1,"a":1}]}',
    ],
)
def test_a_compact_body_repeating_a_key_is_refused(body: bytes) -> None:
    # Written as orjson writes JSON (the intake's quick path) but for the repeat.
    with pytest.raises(WebhookError) as info:
        parse_request(_headers(body), body, ["s1"])
    assert info.value.status == 400 and "repeats the key" in info.value.message


def test_a_compact_body_is_read_as_any_other() -> None:
    compact = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    spaced = parse_request(_headers(), BODY, ["s1"])
    delivery = parse_request(_headers(compact), compact, ["s1"])
    assert (delivery.action, delivery.installation_id, delivery.repository) == (
        spaced.action,
        spaced.installation_id,
        spaced.repository,
    )
    assert delivery.raw_json == compact


def test_form_encoded_payload() -> None:
    form = urlencode({"payload": BODY.decode()}).encode()
    headers = _headers(form, **{"Content-Type": "application/x-www-form-urlencoded"})
    delivery = parse_request(headers, form, ["s1"])
    assert delivery.action == "created" and delivery.installation_id == 9
    assert delivery.raw_json == BODY


def test_form_without_payload_field() -> None:
    form = b"other=1"
    headers = _headers(form, **{"Content-Type": "application/x-www-form-urlencoded"})
    with pytest.raises(WebhookError, match="no payload field"):
        parse_request(headers, form, ["s1"])


def test_no_secret_configured_refuses() -> None:
    with pytest.raises(WebhookError) as info:
        parse_request(_headers(), BODY, [])
    assert info.value.status == 401
