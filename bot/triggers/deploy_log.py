"""A failed deploy's log, fetched only from hosts the repository lists in `deploy_log_hosts`.

Not GitHub: the host is the repository's own deploy service, asked without any credential, with
no redirects (a listed host cannot send us elsewhere), a timeout, and at most `LOG_BYTES` read.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx

LOG_BYTES = 2_000_000
TIMEOUT_SECONDS = 15.0


def allowed(url: str | None, hosts: Sequence[str]) -> bool:
    return bool(url) and (urlsplit(url).hostname or "") in hosts


def log_url(log: str | None, target: str | None, hosts: Sequence[str]) -> str:
    """The status's `log_url`, else its `target_url`, whichever is on a listed host; or ""."""
    return next((url for url in (log, target) if url and allowed(url, hosts)), "")


async def fetch_log(
    url: str, hosts: Sequence[str], transport: httpx.AsyncBaseTransport | None = None
) -> str:
    """The log at `url` if its host is listed; "" otherwise, on any error or non-200 answer.
    Reading stops at `LOG_BYTES`, however long the answer is."""
    if not allowed(url, hosts):
        return ""
    try:
        async with (
            httpx.AsyncClient(
                timeout=TIMEOUT_SECONDS, follow_redirects=False, transport=transport
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                return ""
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk[: LOG_BYTES - len(body)]
                if len(body) >= LOG_BYTES:
                    break
    except httpx.HTTPError:
        return ""
    return body.decode(response.encoding or "utf-8", errors="replace")
