"""Eval tasks in SWE-bench's instance format, read from a JSON Lines file. Pure: a malformed line
is a `TaskFileError` naming the line and the field, never a half-read task set."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REQUIRED_TEXT = ("instance_id", "repo", "base_commit", "problem_statement", "test_cmd")
OPTIONAL_TEXT = ("patch", "test_patch")
TEST_LISTS = ("FAIL_TO_PASS", "PASS_TO_PASS")


class TaskFileError(ValueError):
    """The task file cannot be used; the message names the line and what is wrong."""


@dataclass(frozen=True)
class EvalTask:
    instance_id: str
    repo: str
    base_commit: str
    problem_statement: str
    patch: str
    test_patch: str
    fail_to_pass: tuple[str, ...]
    pass_to_pass: tuple[str, ...]
    test_cmd: str


def _test_ids(value: Any, field: str, where: str) -> tuple[str, ...]:
    # SWE-bench's own files store these lists as JSON text inside the JSON.
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise TaskFileError(f"{where}: {field} is neither a list nor JSON text") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TaskFileError(f"{where}: {field} must be a list of test ids")
    return tuple(value)


def parse_task(data: Any, where: str, base: Path) -> EvalTask:
    """One instance. A relative local `repo` is taken relative to the task file's folder."""
    if not isinstance(data, dict):
        raise TaskFileError(f"{where}: a task is a JSON object")
    for name in REQUIRED_TEXT:
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise TaskFileError(f"{where}: {name} is missing or not text")
    for name in OPTIONAL_TEXT:
        if not isinstance(data.get(name, ""), str):
            raise TaskFileError(f"{where}: {name} must be text")
    repo = data["repo"]
    if "://" not in repo and not Path(repo).is_absolute():
        repo = str((base / repo).resolve())
    fail_to_pass = _test_ids(data.get("FAIL_TO_PASS", []), "FAIL_TO_PASS", where)
    if not fail_to_pass:
        raise TaskFileError(f"{where}: FAIL_TO_PASS is empty: nothing would show a fix")
    return EvalTask(
        instance_id=data["instance_id"],
        repo=repo,
        base_commit=data["base_commit"],
        problem_statement=data["problem_statement"],
        patch=data.get("patch", ""),
        test_patch=data.get("test_patch", ""),
        fail_to_pass=fail_to_pass,
        pass_to_pass=_test_ids(data.get("PASS_TO_PASS", []), "PASS_TO_PASS", where),
        test_cmd=data["test_cmd"],
    )


def task_lines(text: str, name: str) -> list[tuple[str, Any]]:
    """(where, JSON value) of each line that is not blank; `where` is "name:line"."""
    found: list[tuple[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            found.append((where, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise TaskFileError(f"{where}: not JSON ({exc.msg})") from None
    if not found:
        raise TaskFileError(f"{name}: no tasks")
    return found


def check_unique(ids: list[tuple[str, str]]) -> None:
    """Each (where, instance_id) names a task no line before it named."""
    seen: set[str] = set()
    for where, instance_id in ids:
        if instance_id in seen:
            raise TaskFileError(f"{where}: instance_id {instance_id!r} appears twice")
        seen.add(instance_id)


def parse_tasks(text: str, base: Path, name: str = "tasks") -> list[EvalTask]:
    found = [(where, parse_task(data, where, base)) for where, data in task_lines(text, name)]
    check_unique([(where, task.instance_id) for where, task in found])
    return [task for _, task in found]


def load_tasks(path: Path) -> list[EvalTask]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise TaskFileError(f"{path}: {exc.strerror}") from None
    return parse_tasks(text, path.parent, str(path))
