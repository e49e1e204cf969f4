"""GitHub's own description of its REST API, as the stand-in holds requests and answers to it:
which method and path pairs exist, what a request body must be, what an answer must carry.

The description is GitHub's OpenAPI document from the npm package `@octokit/openapi` (MIT),
trimmed to the operations the stand-in serves by scripts/trim_github_openapi.py and kept in
tests/fixtures/github-openapi/. It is OpenAPI 3.0, whose `nullable: true` JSON Schema does not
know; loading turns it into the `null` type JSON Schema validators understand, and its
overlapping `oneOf`s into `anyOf`s."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import referencing
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, relevance
from referencing.jsonschema import DRAFT202012

DESCRIPTION = (
    Path(__file__).resolve().parents[1]
    / "tests"
    / "fixtures"
    / "github-openapi"
    / "api.github.com.json"
)
METHODS = ("get", "post", "put", "patch", "delete")
_URI = "urn:github-openapi"


@dataclass(frozen=True)
class Operation:
    """One operation of GitHub's description: its method, path template and what it takes."""

    method: str
    path: str
    operation_id: str
    docs: str
    pattern: re.Pattern[str]
    integer_params: frozenset[str]
    body_pointer: str | None
    body_required: bool

    def response_pointer(self, status: int, description: Description) -> str | None:
        """Where the JSON schema of the answer with `status` is, or None if it has none."""
        base = f"/paths/{_escape(self.path)}/{self.method.lower()}/responses/{status}"
        node = description.resolve(base)
        if node is None:
            return None
        if "$ref" in node:
            base = node["$ref"].removeprefix("#")
            node = description.resolve(base)
        if node is None or "application/json" not in node.get("content", {}):
            return None
        return f"{base}/content/application~1json/schema"


class Description:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = _json_schema(document)
        self.version = str(document["info"]["version"])
        resource = DRAFT202012.create_resource(self.document)
        self._registry: referencing.Registry[Any] = referencing.Registry().with_resource(
            _URI, resource
        )
        self.operations = list(_operations(self))
        self._validators: dict[str, Draft202012Validator] = {}

    def resolve(self, pointer: str) -> Any:
        node: Any = self.document
        for part in pointer.strip("/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def operation(self, method: str, path: str) -> Operation | None:
        """The operation with this method and path template, if GitHub describes one."""
        return next((op for op in self.operations if op.method == method and op.path == path), None)

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation a request's method and concrete path name, with its path parameters."""
        found = [
            (op, m.groupdict())
            for op in self.operations
            if op.method == method and (m := op.pattern.fullmatch(path))
        ]
        # "/commits/{ref}/status" before "/commits/{ref}/statuses"-like ties: most literal wins.
        found.sort(key=lambda pair: -len(re.sub(r"\{[^}]+\}", "", pair[0].path)))
        return found[0] if found else None

    def validator(self, pointer: str) -> Draft202012Validator:
        if pointer not in self._validators:
            schema = {"$ref": f"{_URI}#{pointer}"}
            self._validators[pointer] = Draft202012Validator(schema, registry=self._registry)
        return self._validators[pointer]

    def request_problem(self, operation: Operation, body: Any) -> str | None:
        """GitHub's "Invalid request" text for a body its description refuses, or None."""
        if operation.body_pointer is None:
            return None
        if body is None:
            if not operation.body_required:
                return None
            body = {}
        errors = list(self.validator(operation.body_pointer).iter_errors(body))
        return _github_message(max(errors, key=relevance)) if errors else None

    def answer_problems(self, operation: Operation, status: int, data: Any) -> list[str]:
        """How a JSON answer misses the description's schema for that status (empty: it fits;
        a status the operation does not describe is a problem too)."""
        pointer = operation.response_pointer(status, self)
        if pointer is None:
            described = self.resolve(
                f"/paths/{_escape(operation.path)}/{operation.method.lower()}/responses/{status}"
            )
            return [] if described is not None else [f"status {status} is not described"]
        errors = self.validator(pointer).iter_errors(data)
        return [f"{_where(e)}: {e.message[:300]}" for e in errors]


@functools.cache
def description() -> Description:
    return Description(json.loads(DESCRIPTION.read_text()))


def _escape(path: str) -> str:
    return path.replace("~", "~0").replace("/", "~1")


def _operations(description: Description) -> Iterator[Operation]:
    parameters = description.document.get("components", {}).get("parameters", {})
    for path, item in description.document["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            params = [
                parameters[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
                for p in op.get("parameters", [])
            ]
            in_path = {p["name"]: p for p in params if p["in"] == "path"}
            body = op.get("requestBody", {})
            yield Operation(
                method=method.upper(),
                path=path,
                operation_id=op.get("operationId", ""),
                docs=op.get("externalDocs", {}).get("url", "https://docs.github.com/rest"),
                pattern=_pattern(path, in_path),
                integer_params=frozenset(
                    name
                    for name, p in in_path.items()
                    if p.get("schema", {}).get("type") == "integer"
                ),
                body_pointer=(
                    f"/paths/{_escape(path)}/{method}/requestBody/content/application~1json/schema"
                    if "application/json" in body.get("content", {})
                    else None
                ),
                body_required=bool(body.get("required")),
            )


def _pattern(path: str, in_path: dict[str, dict[str, Any]]) -> re.Pattern[str]:
    def group(match: re.Match[str]) -> str:
        name = match.group(1)
        many = in_path.get(name, {}).get("x-multi-segment")
        return f"(?P<{name}>{'.+' if many else '[^/]+'})"

    return re.compile(
        re.sub(r"\{(\w+)\}", group, re.escape(path).replace(r"\{", "{").replace(r"\}", "}"))
    )


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema: `null` added to the type (and to an enum),
    or a schema without a type (`$ref`, `anyOf`...) as one of `null` and itself."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    if "oneOf" in out:
        # GitHub's alternatives overlap (a commit's author is a user or an empty object, and a
        # user is an object too), so its own answers fail a strict oneOf: any one must fit.
        alternatives, _ = out.pop("oneOf"), out.pop("discriminator", None)
        if "anyOf" in out:
            out["allOf"] = [*out.get("allOf", []), {"anyOf": alternatives}]
        else:
            out["anyOf"] = alternatives
    if node.get("nullable") is not True:
        return out
    if "type" in out:
        out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else out["type"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [out, {"type": "null"}]}


def _where(error: ValidationError) -> str:
    return "/" + "/".join(str(part) for part in error.absolute_path)


JSON_TYPES = {"string": "a string", "integer": "an integer", "number": "a number"}
JSON_TYPES |= {"boolean": "a boolean", "object": "an object", "array": "an array", "null": "null"}


def _github_message(error: ValidationError) -> str:
    """GitHub's wording of a schema failure ("\\"base\\" wasn't supplied.", "For
    'properties/status', 5 is not a string.")."""
    parts = [f"properties/{part}" for part in error.absolute_path if isinstance(part, str)]
    where = "/".join(parts) or "body"
    value, expected = json.dumps(error.instance), cast(Any, error.validator_value)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f'"{missing}" wasn\'t supplied.'
    if error.validator == "additionalProperties":
        return f"{error.message}."
    if error.validator == "type":
        types = expected if isinstance(expected, list) else [expected]
        wanted = " or ".join(JSON_TYPES.get(str(t), str(t)) for t in types)
        return f"For '{where}', {value} is not {wanted}."
    if error.validator in ("anyOf", "oneOf") and error.context:
        each = dict.fromkeys(_github_message(sub) for sub in error.context)
        return "\n".join(['No subschema in "anyOf" matched.', *each])
    if error.validator == "enum":
        members = ", ".join(json.dumps(m) for m in expected)
        return f"For '{where}', {value} is not a member of [{members}]."
    return f"For '{where}', {error.message}."
