"""The official anthropic SDK, unmodified, against the Messages stand-in over a real socket."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from standins.anthropic import MessagesStandIn, Turn

TOOLS: list[Any] = [
    {"type": "bash_20250124", "name": "bash"},
    {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
]
LONG_SYSTEM = "You are a careful engineer. " * 400  # > 1024 tokens, so it can be cached


@pytest.fixture
def model() -> Iterator[MessagesStandIn]:
    with MessagesStandIn() as standin:
        yield standin


def _client(model: MessagesStandIn, retries: int = 2) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=model.url, api_key="test-key", max_retries=retries)


def _user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_text_turn_non_streaming(model: MessagesStandIn) -> None:
    model.script([Turn.text("Plan: fix add().")])
    message = _client(model).messages.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=_user("hi")
    )
    assert message.content[0].type == "text" and message.content[0].text == "Plan: fix add()."
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    sent = model.headers[0]
    assert sent.get("x-api-key") == "test-key" or sent.get("authorization") == "Bearer test-key"
    assert sent["anthropic-version"]


def test_tool_round_trip_streaming(model: MessagesStandIn) -> None:
    model.script(
        [
            Turn.tool_use("bash", {"command": "pytest -q"}, text="Running the tests."),
            Turn.text("All green."),
        ]
    )
    client = _client(model)
    messages: list[Any] = _user("fix it")
    with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=200, tools=TOOLS, messages=messages
    ) as stream:
        first = stream.get_final_message()
    tool = first.content[1]
    assert first.stop_reason == "tool_use" and tool.type == "tool_use"
    assert tool.name == "bash" and tool.input == {"command": "pytest -q"}
    messages.append({"role": "assistant", "content": [b.model_dump() for b in first.content]})
    messages.append(
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "3 passed"}],
        }
    )
    with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=200, tools=TOOLS, messages=messages
    ) as stream:
        second = stream.get_final_message()
    assert second.content[0].type == "text" and second.content[0].text == "All green."
    assert model.failures == []
    total = model.total_usage()
    assert total["output_tokens"] == first.usage.output_tokens + second.usage.output_tokens


def test_create_with_stream_true_yields_the_raw_events(model: MessagesStandIn) -> None:
    model.script([Turn.text("streamed text that is long enough to be split into deltas")])
    events = list(
        _client(model).messages.create(model="m", max_tokens=50, stream=True, messages=_user("x"))
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds and "message_delta" in kinds


def test_missing_tool_result_is_a_loud_400(model: MessagesStandIn) -> None:
    model.script([Turn.text("unused")])
    bad: list[Any] = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "ls"}}
            ],
        },
        {"role": "user", "content": "no result here"},
    ]
    with pytest.raises(anthropic.BadRequestError, match="tool_result"):
        _client(model).messages.create(model="m", max_tokens=10, tools=TOOLS, messages=bad)
    assert model.failures and "tool_use" in model.failures[0]


def test_sdk_retries_429_and_529(model: MessagesStandIn) -> None:
    model.script(
        [Turn.error(429, retry_after=0), Turn.error(529, retry_after=0), Turn.text("finally")]
    )
    message = _client(model, retries=2).messages.create(
        model="m", max_tokens=10, messages=_user("x")
    )
    assert message.content[0].type == "text" and message.content[0].text == "finally"
    assert len(model.requests) == 3


def test_529_without_retries_is_overloaded(model: MessagesStandIn) -> None:
    model.script([Turn.error(529)])
    with pytest.raises(anthropic.APIStatusError) as info:
        _client(model, retries=0).messages.create(model="m", max_tokens=10, messages=_user("x"))
    assert info.value.status_code == 529


def test_wrong_key_is_401() -> None:
    with MessagesStandIn(api_key="right") as model:
        client = anthropic.Anthropic(base_url=model.url, api_key="wrong", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError):
            client.messages.create(model="m", max_tokens=10, messages=_user("x"))


def _system(text: str) -> list[Any]:
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]


def test_cache_reads_follow_the_breakpoints(model: MessagesStandIn) -> None:
    model.script([Turn.text("a"), Turn.text("b"), Turn.text("c")])
    client = _client(model)
    first = client.messages.create(
        model="m", max_tokens=10, system=_system(LONG_SYSTEM), messages=_user("one")
    )
    assert (first.usage.cache_creation_input_tokens or 0) > 1000
    assert first.usage.cache_read_input_tokens == 0
    second = client.messages.create(
        model="m", max_tokens=10, system=_system(LONG_SYSTEM), messages=_user("two")
    )
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    changed = client.messages.create(
        model="m", max_tokens=10, system=_system(LONG_SYSTEM + "!"), messages=_user("two")
    )
    assert changed.usage.cache_read_input_tokens == 0


def test_lookback_is_limited_to_twenty_blocks(model: MessagesStandIn) -> None:
    model.script([Turn.text("a"), Turn.text("b")])
    client = _client(model)
    history: list[Any] = []
    for i in range(12):
        history.append(
            {"role": "user", "content": [{"type": "text", "text": f"question {i} " + "x" * 200}]}
        )
        history.append({"role": "assistant", "content": [{"type": "text", "text": f"answer {i}"}]})
    history.append({"role": "user", "content": [{"type": "text", "text": "last"}]})
    client.messages.create(model="m", max_tokens=10, system=_system(LONG_SYSTEM), messages=history)
    # Next turn: no breakpoint on the system any more, only one at the end, > 20 blocks later.
    longer = list(history)
    longer.append({"role": "assistant", "content": [{"type": "text", "text": "more"}]})
    longer.append(
        {
            "role": "user",
            "content": [{"type": "text", "text": "again", "cache_control": {"type": "ephemeral"}}],
        }
    )
    late = client.messages.create(
        model="m", max_tokens=10, system=[{"type": "text", "text": LONG_SYSTEM}], messages=longer
    )
    assert late.usage.cache_read_input_tokens == 0


def test_count_tokens(model: MessagesStandIn) -> None:
    counted = _client(model).messages.count_tokens(model="m", messages=_user("hello world"))
    assert counted.input_tokens > 0


@pytest.mark.anyio
async def test_async_sdk_streams_a_tool_use_and_a_raw_stream(model: MessagesStandIn) -> None:
    model.script(
        [
            Turn.tool_use(
                "str_replace_based_edit_tool",
                {
                    "command": "str_replace",
                    "path": "/workspace/x.py",
                    "old_str": "a",
                    "new_str": "b",
                },
            ),
            Turn.text("done"),
        ]
    )
    client = anthropic.AsyncAnthropic(base_url=model.url, api_key="k", max_retries=0)
    async with client.messages.stream(
        model="m", max_tokens=50, tools=TOOLS, messages=_user("edit")
    ) as stream:
        first = await stream.get_final_message()
    block = first.content[0]
    assert block.type == "tool_use" and block.name == "str_replace_based_edit_tool"
    assert block.input == {
        "command": "str_replace",
        "path": "/workspace/x.py",
        "old_str": "a",
        "new_str": "b",
    }
    raw = await client.messages.create(model="m", max_tokens=50, messages=_user("x"), stream=True)
    kinds = [event.type async for event in raw]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    await client.close()


def test_out_of_script_fails_loudly_without_retries(model: MessagesStandIn) -> None:
    with pytest.raises(anthropic.InternalServerError, match="no more turns"):
        _client(model, retries=2).messages.create(model="m", max_tokens=10, messages=_user("x"))
    assert len(model.requests) == 1 and "more turns than scripted" in model.failures[0]


def test_a_callable_turn_sees_the_request_and_its_assertion_is_recorded(
    model: MessagesStandIn,
) -> None:
    def answer(request: dict[str, Any]) -> Turn:
        assert request["messages"][-1]["content"] == "ping"
        return Turn.text("pong")

    model.script([answer, answer])
    client = _client(model)
    reply = client.messages.create(model="m", max_tokens=10, messages=_user("ping"))
    assert reply.content[0].type == "text" and reply.content[0].text == "pong"
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(model="m", max_tokens=10, messages=_user("other"))
    assert len(model.requests) == 2 and "AssertionError" in model.failures[0]


def test_moving_the_breakpoint_right_reads_the_earlier_prefix(model: MessagesStandIn) -> None:
    def marked(role: str, text: str) -> dict[str, Any]:
        return {
            "role": role,
            "content": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}],
        }

    model.script([Turn.text("a"), Turn.text("b")])
    client = _client(model)
    first_history: list[Any] = [marked("user", LONG_SYSTEM)]
    first = client.messages.create(model="m", max_tokens=10, messages=first_history)
    second_history: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": LONG_SYSTEM}]},
        {"role": "assistant", "content": "a"},
        marked("user", "next question"),
    ]
    second = client.messages.create(model="m", max_tokens=10, messages=second_history)
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert (second.usage.cache_creation_input_tokens or 0) > 0 and second.usage.input_tokens == 0
    assert model.total_usage()["cache_read_input_tokens"] == second.usage.cache_read_input_tokens


def test_runs_as_a_module() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "standins.anthropic", "--text", "hello from -m"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("ANTHROPIC_BASE_URL=http://127.0.0.1:")
        client = anthropic.Anthropic(base_url=line.split("=", 1)[1], api_key="k", max_retries=0)
        reply = client.messages.create(model="m", max_tokens=10, messages=_user("hi"))
        assert reply.content[0].type == "text" and reply.content[0].text == "hello from -m"
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize(
    ("messages", "system", "complaint"),
    [
        ([{"role": "assistant", "content": "hi"}], None, "first message"),
        (_user("a") + _user("b"), None, "alternate"),
        (_user("x"), [{"type": "image", "text": "x"}], "system"),
        ([{"role": "user", "content": [{"type": "text", "text": ""}]}], None, "non-empty"),
        (
            [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "here"},
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
                    ],
                },
            ],
            None,
            "come first",
        ),
        (
            [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9"}]}],
            None,
            "unexpected `tool_use_id`",
        ),
    ],
)
def test_invalid_requests_are_refused_and_recorded(
    model: MessagesStandIn, messages: list[Any], system: Any, complaint: str
) -> None:
    extra: dict[str, Any] = {} if system is None else {"system": system}
    with pytest.raises(anthropic.BadRequestError, match=complaint):
        _client(model).messages.create(
            model="m", max_tokens=10, tools=TOOLS, messages=messages, **extra
        )
    assert len(model.failures) == 1 and complaint in model.failures[0]


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "bash_20250124", "name": "shell"},
        {"name": "lookup"},
        {"name": "lookup", "input_schema": {"type": "string"}},
        {"type": "computer_20990101", "name": "computer"},
    ],
)
def test_invalid_tools_are_refused(model: MessagesStandIn, tool: dict[str, Any]) -> None:
    tools: list[Any] = [tool]
    with pytest.raises(anthropic.BadRequestError, match="tools"):
        _client(model).messages.create(
            model="m",
            max_tokens=10,
            tools=tools,
            messages=_user("x"),
        )
    assert model.failures


def test_more_than_four_breakpoints_are_refused(model: MessagesStandIn) -> None:
    system: list[Any] = [
        {"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
        for i in range(5)
    ]
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4"):
        _client(model).messages.create(
            model="m",
            max_tokens=10,
            system=system,
            messages=_user("x"),
        )


def test_caches_are_per_model_and_count_tokens_matches_usage(model: MessagesStandIn) -> None:
    model.script([Turn.text("a"), Turn.text("b")])
    client = _client(model)
    first = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=10, system=_system(LONG_SYSTEM), messages=_user("q")
    )
    other = client.messages.create(
        model="claude-opus-4-1", max_tokens=10, system=_system(LONG_SYSTEM), messages=_user("q")
    )
    assert other.usage.cache_read_input_tokens == 0
    counted = client.messages.count_tokens(
        model="claude-sonnet-4-6", system=_system(LONG_SYSTEM), messages=_user("q")
    )
    usage = first.usage
    assert counted.input_tokens == (
        usage.input_tokens
        + (usage.cache_creation_input_tokens or 0)
        + (usage.cache_read_input_tokens or 0)
    )
    with pytest.raises(anthropic.BadRequestError, match="first message"):
        client.messages.count_tokens(model="m", messages=[{"role": "assistant", "content": "x"}])


def test_parallel_tool_uses_and_a_truncated_text(model: MessagesStandIn) -> None:
    model.script(
        [
            Turn.tool_uses([("bash", {"command": "ls"}), ("bash", {"command": "pwd"})]),
            Turn.text("cut", stop_reason="max_tokens"),
        ]
    )
    client = _client(model)
    with client.messages.stream(
        model="m", max_tokens=50, tools=TOOLS, messages=_user("go")
    ) as stream:
        first = stream.get_final_message()
    ids = [b.id for b in first.content if b.type == "tool_use"]
    assert len(set(ids)) == 2 and first.stop_reason == "tool_use"
    answers: list[Any] = [{"type": "tool_result", "tool_use_id": i, "content": "ok"} for i in ids]
    history: list[Any] = [
        *_user("go"),
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": answers},
    ]
    second = client.messages.create(model="m", max_tokens=50, tools=TOOLS, messages=history)
    assert second.stop_reason == "max_tokens"


def test_a_tool_use_of_an_undeclared_tool_is_a_script_failure(model: MessagesStandIn) -> None:
    model.script([Turn.tool_use("bash", {"command": "ls"})])
    with pytest.raises(anthropic.InternalServerError, match="offers tools"):
        _client(model).messages.create(model="m", max_tokens=10, messages=_user("x"))
    assert model.failures and not model.responses


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, anthropic.BadRequestError), (401, anthropic.AuthenticationError)],
)
def test_scripted_client_errors_are_not_retried(
    model: MessagesStandIn, status: int, error: type[Exception]
) -> None:
    model.script([Turn.error(status), Turn.text("never")])
    with pytest.raises(error):
        _client(model, retries=2).messages.create(model="m", max_tokens=10, messages=_user("x"))
    assert len(model.requests) == 1 and model.remaining() == 1


def _post(model: MessagesStandIn, body: dict[str, Any], path: str = "/v1/messages") -> Any:
    return httpx.post(
        f"{model.url}{path}",
        json=body,
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )


def _tool(name: str = "lookup", **schema: Any) -> dict[str, Any]:
    return {"name": name, "input_schema": {"type": "object", **schema}}


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"messages": ["hi"]}, "messages.0: Input should be a valid dictionary"),
        ({"messages": [{"role": "user", "content": "x"}, 5]}, "messages.1: Input should be"),
        ({"messages": _user("x"), "tools": "bash"}, "tools: Input should be a valid list"),
        ({"messages": _user("x"), "tools": ["bash"]}, "tools.0: Input should be"),
        ({"messages": _user("x"), "tools": [_tool("bad name!")]}, "tools.0.name"),
        ({"messages": _user("x"), "tools": [_tool("x" * 65)]}, "tools.0.name"),
        ({"messages": _user("x"), "tools": [_tool("")]}, "tools.0.name"),
        ({"messages": _user("x"), "tools": [_tool(properties=[])]}, "properties must be"),
        ({"messages": _user("x"), "tools": [_tool(properties={"q": "string"})]}, "properties.q"),
        (
            {"messages": _user("x"), "tools": [_tool(properties={"q": {"type": "str"}})]},
            "not a JSON schema type",
        ),
        ({"messages": _user("x"), "tools": [_tool(required="q")]}, "required must be"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_use", "id": "t", "name": "bash", "input": {}}],
                    }
                ]
            },
            "`tool_use` blocks can only be in `assistant` messages",
        ),
        (
            {
                "messages": [
                    *_user("x"),
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}],
                    },
                ]
            },
            "`tool_result` blocks can only be in `user` messages",
        ),
        (
            {"messages": _user("x"), "system": [{"type": "text", "text": ""}]},
            "system.0.text: text content blocks must be non-empty",
        ),
    ],
)
def test_malformed_requests_are_400s_never_500s(
    model: MessagesStandIn, fields: dict[str, Any], complaint: str
) -> None:
    answer = _post(model, {"model": "m", "max_tokens": 10, **fields})
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert complaint in answer.json()["error"]["message"]
    assert len(model.failures) == 1 and complaint in model.failures[0]
    counted = _post(model, {"model": "m", **fields}, "/v1/messages/count_tokens")
    assert counted.status_code == 400


def test_valid_custom_tool_schemas_are_accepted(model: MessagesStandIn) -> None:
    model.script([Turn.text("ok")])
    tool = _tool(
        "look-up_2",
        properties={"q": {"type": "string"}, "n": {"type": ["integer", "null"]}, "any": {}},
        required=["q"],
    )
    assert (
        _post(
            model, {"model": "m", "max_tokens": 10, "messages": _user("x"), "tools": [tool]}
        ).status_code
        == 200
    )
    assert model.failures == []


def test_scripted_429_sends_retry_after(model: MessagesStandIn) -> None:
    model.script([Turn.error(429), Turn.error(429, retry_after=3), Turn.error(529)])
    body = {"model": "m", "max_tokens": 10, "messages": _user("x")}
    default = _post(model, body)
    assert default.status_code == 429 and default.headers["retry-after"] == "0"
    assert default.json()["error"]["type"] == "rate_limit_error"
    assert _post(model, body).headers["retry-after"] == "3"
    assert "retry-after" not in _post(model, body).headers
    model.script([Turn.error(429), Turn.text("after the wait")])
    started = time.monotonic()
    reply = _client(model, retries=1).messages.create(model="m", max_tokens=10, messages=_user("x"))
    assert reply.content[0].type == "text" and reply.content[0].text == "after the wait"
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/models"), ("POST", "/v2/messages"), ("GET", "/")]
)
def test_unknown_routes_answer_the_apis_error_shape(
    model: MessagesStandIn, method: str, path: str
) -> None:
    answer = httpx.request(method, f"{model.url}{path}", headers={"x-api-key": "k"})
    assert answer.status_code == 404
    assert answer.json()["type"] == "error"
    assert answer.json()["error"]["type"] == "not_found_error"


def test_a_streamed_tool_use_answer_sends_the_apis_events_in_order(model: MessagesStandIn) -> None:
    model.script([Turn.tool_use("bash", {"command": "pytest -q"}, text="Running the tests.")])
    body = {"model": "m", "max_tokens": 50, "tools": TOOLS, "messages": _user("go"), "stream": True}
    events: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream(
        "POST",
        f"{model.url}/v1/messages",
        json=body,
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                assert data["type"] == name
                events.append((name, data))
    assert [(n, d.get("index")) for n, d in events] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("ping", None),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["role"] == "assistant"
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert events[3][1]["delta"] == {"type": "text_delta", "text": "Running the tests."}
    tool = events[5][1]["content_block"]
    assert tool["type"] == "tool_use" and tool["name"] == "bash" and tool["input"] == {}
    assert tool["id"].startswith("toolu_")
    delta = events[6][1]["delta"]
    assert delta["type"] == "input_json_delta"
    assert json.loads(delta["partial_json"]) == {"command": "pytest -q"}
    final = events[8][1]
    assert final["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert final["usage"]["output_tokens"] == model.responses[0]["usage"]["output_tokens"]
