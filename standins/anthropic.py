"""A stand-in for Anthropic's Messages API, on a real socket, for tests and `shipmate demo`.

The official SDK talks to it unmodified (`base_url=standin.url`). Turns are scripted; requests are
validated as the API validates them (a bad request fails loudly: 400 plus a recorded failure);
usage is computed from the request, including prompt caching: a request reads from cache the
longest prefix that ends at a breakpoint of an earlier request, looked for up to 20 blocks back
from each of its own breakpoints, so a client that places its breakpoints badly sees it.

Token counts are deterministic: ceil(UTF-8 bytes / 4) of each block's JSON.

    with MessagesStandIn() as model:
        model.script([Turn.tool_use("bash", {"command": "pytest"}), Turn.text("Done.")])
        client = anthropic.Anthropic(base_url=model.url, api_key="test")
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from standins.server import ServerThread

LOOKBACK_BLOCKS = 20
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SCHEMA_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}
CACHE_TTL_SECONDS = 300.0
BUILTIN_TOOLS = {
    "bash_20250124": "bash",
    "text_editor_20250728": "str_replace_based_edit_tool",
    "text_editor_20250429": "str_replace_based_edit_tool",
    "bash_20241022": "bash",
}


@dataclass(frozen=True)
class Turn:
    """One scripted answer: content blocks and a stop reason, or an error status."""

    content: tuple[dict[str, Any], ...] = ()
    stop_reason: str = "end_turn"
    error_status: int | None = None
    retry_after: float | None = None

    @classmethod
    def text(cls, text: str, *, stop_reason: str = "end_turn") -> Turn:
        """A text answer; `stop_reason="max_tokens"` scripts a truncated one."""
        return cls(({"type": "text", "text": text},), stop_reason)

    @classmethod
    def tool_use(cls, name: str, tool_input: dict[str, Any], *, text: str | None = None) -> Turn:
        return cls.tool_uses([(name, tool_input)], text=text)

    @classmethod
    def tool_uses(
        cls, calls: Sequence[tuple[str, dict[str, Any]]], *, text: str | None = None
    ) -> Turn:
        """Several tool calls in one answer (parallel tool use), each with a fresh id."""
        blocks: list[dict[str, Any]] = []
        if text:
            blocks.append({"type": "text", "text": text})
        for name, tool_input in calls:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{uuid.uuid4().hex[:24]}",
                    "name": name,
                    "input": tool_input,
                }
            )
        return cls(tuple(blocks), "tool_use")

    @classmethod
    def error(cls, status: int, *, retry_after: float | None = None) -> Turn:
        """An error answer; a 429 carries `retry-after` (0 unless given, so retries are fast)."""
        if status == 429 and retry_after is None:
            retry_after = 0
        return cls((), "", status, retry_after)


Script = Turn | Callable[[dict[str, Any]], Turn]

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


def tokens_of(value: Any) -> int:
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, sort_keys=True, separators=(",", ":"))
    )
    return max(1, math.ceil(len(text.encode()) / 4))


def _without_cache_control(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


def flatten(body: dict[str, Any]) -> list[tuple[dict[str, Any], bool]]:
    """The prompt as the API orders it for caching: tools, system, messages; each block with
    whether it carries a cache_control breakpoint."""
    blocks: list[tuple[dict[str, Any], bool]] = []
    for tool in body.get("tools") or []:
        blocks.append((_without_cache_control(tool), "cache_control" in tool))
    system = body.get("system")
    if isinstance(system, str):
        blocks.append(({"type": "text", "text": system}, False))
    elif isinstance(system, list):
        for block in system:
            blocks.append((_without_cache_control(block), "cache_control" in block))
    for message in body.get("messages") or []:
        content = message["content"]
        if isinstance(content, str):
            blocks.append(({"role": message["role"], "type": "text", "text": content}, False))
            continue
        for block in content:
            blocks.append(
                (
                    {"role": message["role"], **_without_cache_control(block)},
                    "cache_control" in block,
                )
            )
    return blocks


class ValidationFailure(Exception):
    pass


def validate(body: dict[str, Any], *, counting: bool = False) -> None:
    """The checks the real API makes that a client can get wrong (count_tokens: no max_tokens)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ValidationFailure("model: field required")
    if not counting and (not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1):
        raise ValidationFailure("max_tokens: field required (a positive integer)")
    system = body.get("system")
    texts = isinstance(system, list) and all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in system
    )
    if system is not None and not isinstance(system, str) and not texts:
        raise ValidationFailure("system: must be a string or a list of text blocks")
    if isinstance(system, list):
        for index, block in enumerate(system):
            if not block["text"]:
                raise ValidationFailure(
                    f"system.{index}.text: text content blocks must be non-empty"
                )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValidationFailure("messages: at least one message is required")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValidationFailure(f"messages.{index}: Input should be a valid dictionary")
    if messages[0].get("role") != "user":
        raise ValidationFailure("messages.0.role: the first message must use the user role")
    for index, (before, after) in enumerate(itertools.pairwise(messages), start=1):
        if before.get("role") == after.get("role"):
            raise ValidationFailure(
                f"messages.{index}: roles must alternate between user and assistant"
            )
    for index, message in enumerate(messages):
        if message.get("role") not in ("user", "assistant"):
            raise ValidationFailure(f"messages.{index}.role: must be user or assistant")
        content = message.get("content")
        if isinstance(content, str):
            if not content and index != len(messages) - 1:
                raise ValidationFailure(f"messages.{index}: text content blocks must be non-empty")
            continue
        if not isinstance(content, list):
            raise ValidationFailure(
                f"messages.{index}.content: must be a string or a list of blocks"
            )
        for number, block in enumerate(content):
            where = f"messages.{index}.content.{number}"
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise ValidationFailure(f"{where}: a content block needs a type")
            if block["type"] == "text" and not block.get("text"):
                raise ValidationFailure(f"{where}: text content blocks must be non-empty")
            if block["type"] == "tool_use" and not (
                isinstance(block.get("id"), str)
                and isinstance(block.get("name"), str)
                and isinstance(block.get("input"), dict)
            ):
                raise ValidationFailure(
                    f"{where}: tool_use needs an id, a name and an input object"
                )
            if block["type"] == "tool_result" and not isinstance(block.get("tool_use_id"), str):
                raise ValidationFailure(f"{where}.tool_use_id: field required")
            home = {"tool_use": "assistant", "tool_result": "user"}.get(block["type"])
            if home is not None and message["role"] != home:
                raise ValidationFailure(
                    f"{where}: `{block['type']}` blocks can only be in `{home}` messages"
                )
        uses = [b["id"] for b in content if b.get("type") == "tool_use"]
        if message["role"] == "assistant" and uses:
            following = messages[index + 1] if index + 1 < len(messages) else None
            answered = (
                {
                    b.get("tool_use_id")
                    for b in following["content"]
                    if isinstance(b, dict) and b.get("type") == "tool_result"
                }
                if following is not None and isinstance(following.get("content"), list)
                else set()
            )
            missing = [u for u in uses if u not in answered]
            if missing:
                raise ValidationFailure(
                    f"messages.{index + 1}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message."
                )
        if message["role"] == "user":
            results = [b.get("tool_use_id") for b in content if b.get("type") == "tool_result"]
            kinds = [b.get("type") for b in content]
            if results and kinds[: len(results)] != ["tool_result"] * len(results):
                # The API wants the answers first; text before them reads as unanswered tool_use.
                raise ValidationFailure(
                    f"messages.{index}: `tool_result` blocks must come first in the content, "
                    "before any other block"
                )
            if results:
                previous = messages[index - 1] if index > 0 else None
                asked = {
                    b.get("id")
                    for b in (previous or {}).get("content", [])
                    if isinstance(b, dict) and b.get("type") == "tool_use"
                }
                orphans = [r for r in results if r not in asked]
                if orphans:
                    raise ValidationFailure(
                        f"messages.{index}: unexpected `tool_use_id` found in `tool_result` "
                        f"blocks: {', '.join(map(str, orphans))}. Each `tool_result` block must "
                        "have a corresponding `tool_use` block in the previous message."
                    )
    _validate_tools(body.get("tools"))
    breakpoints = sum(1 for _, marked in flatten(body) if marked)
    if breakpoints > 4:
        raise ValidationFailure(
            f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
        )


def _validate_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise ValidationFailure("tools: Input should be a valid list")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise ValidationFailure(f"tools.{index}: Input should be a valid dictionary")
        kind = tool.get("type")
        name = tool.get("name")
        if kind in BUILTIN_TOOLS:
            if name != BUILTIN_TOOLS[kind]:
                raise ValidationFailure(
                    f"tools.{index}.name: {kind} must be named {BUILTIN_TOOLS[kind]!r}"
                )
        elif kind in (None, "custom"):
            if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
                raise ValidationFailure(
                    f"tools.{index}.name: String should match pattern '{TOOL_NAME.pattern}'"
                )
            problem = _schema_problem(tool.get("input_schema"))
            if problem:
                raise ValidationFailure(f"tools.{index}.input_schema: {problem}")
        else:
            raise ValidationFailure(f"tools.{index}.type: unknown tool type {kind!r}")
        if name in names:
            raise ValidationFailure(f"tools: tool names must be unique ({name})")
        names.add(str(name))


def _schema_problem(schema: Any) -> str | None:
    """What makes `schema` no object JSON schema the API accepts, or None."""
    if not isinstance(schema, dict):
        return "field required (a JSON schema object)"
    if schema.get("type") != "object":
        return "type must be 'object'"
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        return "properties must be an object"
    for name, spec in properties.items():
        if not isinstance(spec, dict):
            return f"properties.{name} must be a JSON schema object"
        kinds = spec.get("type", [])
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if not all(isinstance(k, str) and k in SCHEMA_TYPES for k in kinds):
            return f"properties.{name}.type {spec['type']!r} is not a JSON schema type"
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        return "required must be a list of property names"
    return None


@dataclass
class PromptCache:
    """Prefix hashes written by earlier requests, with their token counts and expiry."""

    min_tokens: int = 1024
    entries: dict[str, tuple[int, float]] = field(default_factory=dict)

    def usage(
        self, blocks: list[tuple[dict[str, Any], bool]], now: float, model: str = ""
    ) -> tuple[int, int, int]:
        """(input_tokens, cache_creation_input_tokens, cache_read_input_tokens) for a prompt;
        caches are per model, as the API's are."""
        sizes = [tokens_of(block) for block, _ in blocks]
        prefix_tokens = [sum(sizes[: i + 1]) for i in range(len(sizes))]
        digest = hashlib.sha256(model.encode())
        hashes = []
        for block, _ in blocks:
            digest.update(json.dumps(block, sort_keys=True).encode())
            hashes.append(digest.copy().hexdigest())
        marks = [i for i, (_, marked) in enumerate(blocks) if marked]
        total = prefix_tokens[-1] if prefix_tokens else 0
        if not marks:
            return total, 0, 0
        read = 0
        for mark in marks:
            for j in range(mark, max(-1, mark - LOOKBACK_BLOCKS), -1):
                entry = self.entries.get(hashes[j])
                if entry is not None and entry[1] > now:
                    read = max(read, prefix_tokens[j])
                    self.entries[hashes[j]] = (entry[0], now + CACHE_TTL_SECONDS)
                    break
        last = marks[-1]
        cacheable = prefix_tokens[last]
        creation = 0
        if cacheable >= self.min_tokens:
            creation = max(0, cacheable - read)
            for mark in marks:
                if prefix_tokens[mark] >= self.min_tokens:
                    self.entries[hashes[mark]] = (prefix_tokens[mark], now + CACHE_TTL_SECONDS)
        else:
            read = min(read, cacheable)
        return total - read - creation, creation, read


def _problem(body: dict[str, Any], *, counting: bool = False) -> str | None:
    """Why the API would refuse `body` (400), or None; a shape `validate` did not foresee is a
    refusal too, never a 500."""
    try:
        validate(body, counting=counting)
    except ValidationFailure as exc:
        return str(exc)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        return f"invalid request: {exc!r}"
    return None


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
        problem = _problem(body, counting=True)
        if problem:
            return self._error(400, problem)
        return JSONResponse({"input_tokens": sum(tokens_of(b) for b, _ in flatten(body))})

    async def _messages(self, request: Request) -> Response:
        body = await self._parse(request)
        if isinstance(body, JSONResponse):
            return body
        with self._lock:
            self.requests.append(body)
            self.headers.append(dict(request.headers))
            problem = _problem(body)
            if problem:
                self.failures.append(problem)
                return self._error(400, problem)
            if not self._script:
                self.failures.append("the model stand-in was asked for more turns than scripted")
                return self._error(500, "the stand-in's script has no more turns", retry=False)
            step = self._script.pop(0)
        try:
            turn = step(body) if callable(step) else step
        except Exception as exc:  # an assertion in a scripted callable must fail the test, once
            with self._lock:
                self.failures.append(f"scripted turn raised {exc!r}")
            return self._error(500, f"scripted turn raised {exc!r}", retry=False)
        if turn.error_status is not None:
            return self._error(turn.error_status, f"scripted {turn.error_status}", turn.retry_after)
        offered = {tool.get("name") for tool in body.get("tools") or []}
        unknown = [
            b["name"] for b in turn.content if b["type"] == "tool_use" and b["name"] not in offered
        ]
        if unknown:
            # The real model can only call tools the request declares; a script that does hides
            # a client that forgot to send them.
            complaint = f"scripted tool_use of {unknown} but the request offers tools {offered}"
            with self._lock:
                self.failures.append(complaint)
            return self._error(500, complaint, retry=False)
        with self._lock:
            fresh, creation, read = self.cache.usage(flatten(body), time.time(), body["model"])
        usage = {
            "input_tokens": fresh,
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
            "output_tokens": sum(tokens_of(block) for block in turn.content) or 1,
        }
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": list(turn.content),
            "stop_reason": turn.stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        with self._lock:
            self.responses.append(message)
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}", **_RATE_HEADERS}
        if body.get("stream"):
            return StreamingResponse(
                self._events(message), media_type="text/event-stream", headers=headers
            )
        return JSONResponse(message, headers=headers)

    @staticmethod
    def _events(message: dict[str, Any]) -> Iterator[str]:
        def event(name: str, data: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n"

        usage = message["usage"]
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {**usage, "output_tokens": 1},
        }
        yield event("message_start", {"type": "message_start", "message": start})
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                yield event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
                if index == 0:
                    yield event("ping", {"type": "ping"})
                text = block["text"]
                for offset in range(0, len(text), 40):
                    yield event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "text_delta", "text": text[offset : offset + 40]},
                        },
                    )
            else:
                yield event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {
                            "type": "tool_use",
                            "id": block["id"],
                            "name": block["name"],
                            "input": {},
                        },
                    },
                )
                raw = json.dumps(block["input"])
                for offset in range(0, len(raw), 30):
                    yield event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {
                                "type": "input_json_delta",
                                "partial_json": raw[offset : offset + 30],
                            },
                        },
                    )
            yield event("content_block_stop", {"type": "content_block_stop", "index": index})
        yield event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": dict(usage),
            },
        )
        yield event("message_stop", {"type": "message_stop"})


def script_from_file(path: str) -> list[Turn]:
    """Turns from a JSON file: each {"text": T} or {"tool": NAME, "input": {...}, "text": T?}."""
    import json
    from pathlib import Path

    entries = json.loads(Path(path).read_text())
    if not isinstance(entries, list):
        raise SystemExit(f"{path}: a script is a JSON list of turns")
    turns = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise SystemExit(f"{path}: turn {number} is not an object")
        if "tool" in entry:
            turns.append(
                Turn.tool_use(
                    str(entry["tool"]), dict(entry.get("input") or {}), text=entry.get("text")
                )
            )
        elif "text" in entry:
            turns.append(Turn.text(str(entry["text"])))
        else:
            raise SystemExit(f"{path}: turn {number} has neither text nor tool")
    return turns


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


__all__ = ["MessagesStandIn", "PromptCache", "Turn", "flatten", "tokens_of", "validate"]


if __name__ == "__main__":
    main()
