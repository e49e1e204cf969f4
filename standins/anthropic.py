"""A stand-in for Anthropic's Messages API, on a real socket, for tests and `shipmate demo`.

The official SDK talks to it unmodified (`base_url=standin.url`). Turns are scripted; requests are
validated as the API validates them (a bad request fails loudly: 400 plus a recorded failure);
usage is computed from the request, including prompt caching: a request reads from cache the
longest prefix that ends at a breakpoint of an earlier request, looked for up to 20 blocks back
from each of its own breakpoints, so a client that places its breakpoints badly sees it.

Validation: standins/anthropic_requests.py; token counts and the cache: standins/anthropic_cache.py.

    with MessagesStandIn() as model:
        model.script([Turn.tool_use("bash", {"command": "pytest"}), Turn.text("Done.")])
        client = anthropic.Anthropic(base_url=model.url, api_key="test")
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from standins.anthropic_cache import PromptCache, flatten, tokens_of
from standins.anthropic_requests import problem, validate
from standins.anthropic_script import Script, Turn, script_from_file
from standins.anthropic_stream import stream_events
from standins.server import ServerThread

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


_RATE_HEADERS = {
    "anthropic-ratelimit-requests-limit": "1000",
    "anthropic-ratelimit-requests-remaining": "999",
    "anthropic-ratelimit-input-tokens-limit": "2000000",
    "anthropic-ratelimit-input-tokens-remaining": "1999000",
    "anthropic-ratelimit-output-tokens-limit": "400000",
    "anthropic-ratelimit-output-tokens-remaining": "399000",
}


class MessagesStandIn:
    def __init__(
        self, *, min_cache_tokens: int = 1024, api_key: str | None = None, port: int | None = None
    ) -> None:
        self._script: list[Script] = []
        self._lock = threading.Lock()
        self.cache = PromptCache(min_cache_tokens)
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.responses: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self._server = ServerThread(self._app(), port=port)

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> MessagesStandIn:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def script(self, turns: Sequence[Script]) -> None:
        with self._lock:
            self._script.extend(turns)

    def remaining(self) -> int:
        return len(self._script)

    def total_usage(self) -> dict[str, int]:
        keys = (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        )
        return {k: sum(r["usage"][k] for r in self.responses) for k in keys}

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count, methods=["POST"]),
                Route(
                    "/{path:path}", self._unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]
                ),
            ]
        )

    async def _unknown(self, request: Request) -> Response:
        return self._error(404, f"Not found: {request.method} {request.url.path}")

    @staticmethod
    def _error(
        status: int, message: str, retry_after: float | None = None, *, retry: bool = True
    ) -> JSONResponse:
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}", **_RATE_HEADERS}
        if not retry:
            # The SDK honours this over its own status rules: a broken script is not transient.
            headers["x-should-retry"] = "false"
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        kind = _ERROR_TYPES.get(status, "api_error")
        return JSONResponse(
            {"type": "error", "error": {"type": kind, "message": message}}, status, headers=headers
        )

    async def _parse(self, request: Request) -> dict[str, Any] | JSONResponse:
        key = request.headers.get("x-api-key") or request.headers.get(
            "authorization", ""
        ).removeprefix("Bearer ")
        if not key or (self.api_key is not None and key != self.api_key):
            return self._error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self._error(400, "anthropic-version: header is required")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self._error(400, "the request body is not valid JSON")
        if not isinstance(body, dict):
            return self._error(400, "the request body must be a JSON object")
        return body

    async def _count(self, request: Request) -> Response:
        body = await self._parse(request)
        if isinstance(body, JSONResponse):
            return body
        refusal = problem(body, counting=True)
        if refusal:
            return self._error(400, refusal)
        return JSONResponse({"input_tokens": sum(tokens_of(b) for b, _ in flatten(body))})

    async def _messages(self, request: Request) -> Response:
        body = await self._parse(request)
        if isinstance(body, JSONResponse):
            return body
        turn = self._next_turn(body, dict(request.headers))
        if isinstance(turn, JSONResponse):
            return turn
        with self._lock:
            fresh, creation, read = self.cache.usage(flatten(body), time.time(), body["model"])
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": list(turn.content),
            "stop_reason": turn.stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": fresh,
                "cache_creation_input_tokens": creation,
                "cache_read_input_tokens": read,
                "output_tokens": sum(tokens_of(block) for block in turn.content) or 1,
            },
        }
        with self._lock:
            self.responses.append(message)
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}", **_RATE_HEADERS}
        if body.get("stream"):
            return StreamingResponse(
                stream_events(message), media_type="text/event-stream", headers=headers
            )
        return JSONResponse(message, headers=headers)

    def _next_turn(self, body: dict[str, Any], headers: dict[str, str]) -> Turn | JSONResponse:
        """The scripted turn that answers a valid request, or the error reply (recorded as a
        failure where the request or the script is at fault)."""
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            refusal = problem(body)
            if refusal:
                self.failures.append(refusal)
                return self._error(400, refusal)
            if not self._script:
                self.failures.append("the model stand-in was asked for more turns than scripted")
                return self._error(500, "the stand-in's script has no more turns", retry=False)
            step = self._script.pop(0)
        try:
            turn = step(body) if callable(step) else step
        except Exception as exc:  # an assertion in a scripted callable must fail the test, once
            return self._fail(f"scripted turn raised {exc!r}")
        if turn.error_status is not None:
            return self._error(turn.error_status, f"scripted {turn.error_status}", turn.retry_after)
        offered = {tool.get("name") for tool in body.get("tools") or []}
        unknown = [
            b["name"] for b in turn.content if b["type"] == "tool_use" and b["name"] not in offered
        ]
        if unknown:
            # The real model can only call tools the request declares; a script that does hides
            # a client that forgot to send them.
            return self._fail(
                f"scripted tool_use of {unknown} but the request offers tools {offered}"
            )
        return turn

    def _fail(self, complaint: str) -> JSONResponse:
        with self._lock:
            self.failures.append(complaint)
        return self._error(500, complaint, retry=False)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m standins.anthropic [--port N] [--text ANSWER | --script FILE]`: serve until
    interrupted, answering every request with the same text turn, or with the turns of a script
    file (a JSON list of {"text": ...} or {"tool": NAME, "input": {...}, "text": ...}), in
    order."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m standins.anthropic")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--text", default="Nothing to do.")
    parser.add_argument("--script", default=None, metavar="FILE", help="a JSON list of turns")
    args = parser.parse_args(argv)
    standin = MessagesStandIn(port=args.port)
    if args.script:
        standin.script(script_from_file(args.script))
    else:
        answer = Turn.text(args.text)
        standin.script([lambda _body: answer] * 100_000)
    with standin:
        print(f"ANTHROPIC_BASE_URL={standin.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            standin._server.thread.join()


__all__ = [
    "MessagesStandIn",
    "PromptCache",
    "Script",
    "Turn",
    "flatten",
    "script_from_file",
    "tokens_of",
    "validate",
]


if __name__ == "__main__":
    main()
