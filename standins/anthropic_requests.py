"""What the Messages API refuses with a 400, checked the way the API checks it: the checks a
client can get wrong (count_tokens: no max_tokens)."""

from __future__ import annotations

import itertools
import re
from typing import Any

from standins.anthropic_cache import flatten

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SCHEMA_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}
BUILTIN_TOOLS = {
    "bash_20250124": "bash",
    "text_editor_20250728": "str_replace_based_edit_tool",
    "text_editor_20250429": "str_replace_based_edit_tool",
    "bash_20241022": "bash",
}


class ValidationFailure(Exception):
    pass


def validate(body: dict[str, Any], *, counting: bool = False) -> None:
    """Raise `ValidationFailure` with the API's complaint about `body`."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ValidationFailure("model: field required")
    if not counting and (not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1):
        raise ValidationFailure("max_tokens: field required (a positive integer)")
    _validate_system(body.get("system"))
    messages = body.get("messages")
    _validate_roles(messages)
    assert isinstance(messages, list)
    for index, message in enumerate(messages):
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
            _validate_block(block, message["role"], f"messages.{index}.content.{number}")
        if message["role"] == "assistant":
            _validate_answered(messages, index)
        else:
            _validate_results(messages, index)
    _validate_tools(body.get("tools"))
    breakpoints = sum(1 for _, marked in flatten(body) if marked)
    if breakpoints > 4:
        raise ValidationFailure(
            f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
        )


def problem(body: dict[str, Any], *, counting: bool = False) -> str | None:
    """Why the API would refuse `body` (400), or None; a shape `validate` did not foresee is a
    refusal too, never a 500."""
    try:
        validate(body, counting=counting)
    except ValidationFailure as exc:
        return str(exc)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        return f"invalid request: {exc!r}"
    return None


def _validate_system(system: Any) -> None:
    texts = isinstance(system, list) and all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in system
    )
    if system is not None and not isinstance(system, str) and not texts:
        raise ValidationFailure("system: must be a string or a list of text blocks")
    for index, block in enumerate(system if isinstance(system, list) else []):
        if not block["text"]:
            raise ValidationFailure(f"system.{index}.text: text content blocks must be non-empty")


def _validate_roles(messages: Any) -> None:
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


def _validate_block(block: Any, role: str, where: str) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise ValidationFailure(f"{where}: a content block needs a type")
    if block["type"] == "text" and not block.get("text"):
        raise ValidationFailure(f"{where}: text content blocks must be non-empty")
    if block["type"] == "tool_use" and not (
        isinstance(block.get("id"), str)
        and isinstance(block.get("name"), str)
        and isinstance(block.get("input"), dict)
    ):
        raise ValidationFailure(f"{where}: tool_use needs an id, a name and an input object")
    if block["type"] == "tool_result" and not isinstance(block.get("tool_use_id"), str):
        raise ValidationFailure(f"{where}.tool_use_id: field required")
    home = {"tool_use": "assistant", "tool_result": "user"}.get(block["type"])
    if home is not None and role != home:
        raise ValidationFailure(
            f"{where}: `{block['type']}` blocks can only be in `{home}` messages"
        )


def _blocks_of(message: dict[str, Any] | None, kind: str, key: str) -> list[Any]:
    content = (message or {}).get("content")
    if not isinstance(content, list):
        return []
    return [b.get(key) for b in content if isinstance(b, dict) and b.get("type") == kind]


def _validate_answered(messages: list[dict[str, Any]], index: int) -> None:
    """Each tool_use of an assistant message is answered in the next message."""
    uses = _blocks_of(messages[index], "tool_use", "id")
    if not uses:
        return
    following = messages[index + 1] if index + 1 < len(messages) else None
    answered = set(_blocks_of(following, "tool_result", "tool_use_id"))
    missing = [u for u in uses if u not in answered]
    if missing:
        raise ValidationFailure(
            f"messages.{index + 1}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
            "corresponding `tool_result` block in the next message."
        )


def _validate_results(messages: list[dict[str, Any]], index: int) -> None:
    """A user message's tool_results come first and answer the previous message's tool_use."""
    content = messages[index]["content"]
    results = [b.get("tool_use_id") for b in content if b.get("type") == "tool_result"]
    if not results:
        return
    kinds = [b.get("type") for b in content]
    if kinds[: len(results)] != ["tool_result"] * len(results):
        # The API wants the answers first; text before them reads as unanswered tool_use.
        raise ValidationFailure(
            f"messages.{index}: `tool_result` blocks must come first in the content, "
            "before any other block"
        )
    previous = messages[index - 1] if index > 0 else None
    asked = set(_blocks_of(previous, "tool_use", "id"))
    orphans = [r for r in results if r not in asked]
    if orphans:
        raise ValidationFailure(
            f"messages.{index}: unexpected `tool_use_id` found in `tool_result` "
            f"blocks: {', '.join(map(str, orphans))}. Each `tool_result` block must "
            "have a corresponding `tool_use` block in the previous message."
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
