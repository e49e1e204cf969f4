"""The deploy log: fetched only from listed hosts, never through a redirect, read up to a cap."""

from __future__ import annotations

import asyncio

import httpx

from bot.triggers.deploy_log import LOG_BYTES, allowed, fetch_log


def _fetch(url: str, hosts: list[str], handler: httpx.MockTransport) -> str:
    return asyncio.run(fetch_log(url, hosts, transport=handler))


def test_only_listed_hosts_are_asked() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, text="boom at line 3")

    transport = httpx.MockTransport(answer)
    assert _fetch("https://deploy.example.com/log/1", ["deploy.example.com"], transport) == (
        "boom at line 3"
    )
    assert _fetch("https://evil.example.net/log", ["deploy.example.com"], transport) == ""
    assert _fetch("https://deploy.example.com.evil.net/", ["deploy.example.com"], transport) == ""
    assert asked == ["https://deploy.example.com/log/1"]
    assert not allowed(None, ["x"]) and not allowed("", ["x"])


def test_a_redirect_or_an_error_gives_no_log() -> None:
    def redirect(request: httpx.Request) -> httpx.Response:
        if request.url.host == "deploy.example.com":
            return httpx.Response(302, headers={"location": "http://169.254.169.254/latest"})
        raise AssertionError("followed the redirect")

    assert (
        _fetch("https://deploy.example.com/", ["deploy.example.com"], httpx.MockTransport(redirect))
        == ""
    )

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    assert (
        _fetch("https://deploy.example.com/", ["deploy.example.com"], httpx.MockTransport(broken))
        == ""
    )


def test_a_huge_log_is_read_only_up_to_the_cap() -> None:
    sent = 0

    async def endless() -> object:
        nonlocal sent
        while sent < LOG_BYTES * 4:
            sent += 65536
            yield b"x" * 65536

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    text = _fetch(
        "https://deploy.example.com/", ["deploy.example.com"], httpx.MockTransport(answer)
    )
    assert len(text) == LOG_BYTES
    assert sent < LOG_BYTES * 2  # it stopped reading, not just cut what it had read
