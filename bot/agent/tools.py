"""The model's tools, run in the task's sandbox: Anthropic's `bash` and
`str_replace_based_edit_tool`. A tool error is a result the model reads, never a crash; long
output is cut head and tail with a note; every output passes the secret scanner first."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.sandbox.base import Sandbox
from bot.security.redact import redact

WORKSPACE = "/workspace"
MAX_OUTPUT_CHARS = 16_000
BASH_TIMEOUT_SECONDS = 300.0
EDIT_TIMEOUT_SECONDS = 60.0

TOOL_DEFINITIONS: list[dict[str, Any]] = [
    {"type": "bash_20250124", "name": "bash"},
    {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
]

_RESOLVE = (
    'p=$(realpath -m -- "$1") || exit 3; '
    'case "$p" in /workspace|/workspace/*) ;; *) echo "outside /workspace" >&2; exit 3;; esac; '
)


@dataclass(frozen=True)
class ToolResult:
    output: str = ""
    error: str = ""

    @property
    def is_error(self) -> bool:
        return bool(self.error)

    def text(self) -> str:
        return self.error if self.error else self.output


class ToolError(Exception):
    """Raised inside a tool; becomes an error result the model reads."""


def truncate(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    cut = len(text) - 2 * half
    note = f"[... {cut} characters cut; narrow the command to see them ...]"
    return f"{text[:half]}\n{note}\n{text[-half:]}"


def file_lines(text: str) -> list[str]:
    """A file's lines as `cat -n` numbers them: a final newline ends the last line rather than
    starting an empty one."""
    lines = text.split("\n")
    if text.endswith("\n") or not text:
        lines.pop()
    return lines


def inserted(text: str, line: int, new_text: str) -> str:
    """`text` with `new_text` inserted after line `line` (0: at the top)."""
    lines = file_lines(text)
    if not 0 <= line <= len(lines):
        raise ToolError(
            f"insert_line {line} is out of range: the file has {len(lines)} lines, "
            f"so use 0 (the top) to {len(lines)} (the end)"
        )
    new = new_text.split("\n")
    if new_text.endswith("\n") and len(new) > 1:
        new.pop()
    result = "\n".join(lines[:line] + new + lines[line:])
    return result + "\n" if text.endswith("\n") or not text else result


def workspace_path(path: Any) -> str:
    """An absolute, normalised path under /workspace, or ToolError."""
    if not isinstance(path, str) or not path.strip():
        raise ToolError("`path` is required")
    joined = path if path.startswith("/") else posixpath.join(WORKSPACE, path)
    normal = posixpath.normpath(joined)
    if normal != WORKSPACE and not normal.startswith(WORKSPACE + "/"):
        raise ToolError(f"{path} is outside /workspace; only the checkout can be read or edited")
    return normal


def _capped(limit: float, time_left: float | None) -> float:
    """A command's timeout: its own limit, but never past the run's remaining time."""
    if time_left is None:
        return limit
    return max(0.1, min(limit, time_left))


class Tools:
    def __init__(
        self,
        sandbox: Sandbox,
        *,
        bash_timeout: float = BASH_TIMEOUT_SECONDS,
        known_secrets: Iterable[str] = (),
    ) -> None:
        self.sandbox = sandbox
        self.bash_timeout = bash_timeout
        self.known_secrets = tuple(known_secrets)

    async def run(
        self, name: str, tool_input: Any, *, time_left: float | None = None
    ) -> ToolResult:
        """Run one tool call; no command outlives `time_left` (the run's remaining time)."""
        try:
            if not isinstance(tool_input, dict):
                raise ToolError("the tool input must be an object")
            if name == "bash":
                result = await self.bash(tool_input, time_left)
            elif name == "str_replace_based_edit_tool":
                result = await self.edit(tool_input, time_left)
            else:
                raise ToolError(
                    f"there is no tool named {name!r}; use bash or str_replace_based_edit_tool"
                )
        except ToolError as exc:
            result = ToolResult(error=str(exc))
        known = self.known_secrets
        return ToolResult(
            truncate(redact(result.output, known)), truncate(redact(result.error, known))
        )

    async def bash(self, tool_input: dict[str, Any], time_left: float | None = None) -> ToolResult:
        if tool_input.get("restart"):
            return ToolResult("the shell was restarted (every command runs in a fresh shell)")
        command = tool_input.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolError("`command` is required")
        timeout = _capped(self.bash_timeout, time_left)
        result = await self.sandbox.exec(["bash", "-lc", command], timeout_seconds=timeout)
        out = result.stdout.decode("utf-8", errors="replace")
        err = result.stderr.decode("utf-8", errors="replace")
        combined = out + (("\n" if out and err else "") + err if err else "")
        if result.timed_out:
            why = (
                "the run's time limit was reached"
                if timeout < self.bash_timeout
                else "the per-command limit"
            )
            return ToolResult(
                error=f"{combined}\n(timed out after {timeout:g} s ({why}) and was killed)"
            )
        footer = f"\n(exit code {result.exit_code})" if result.exit_code else ""
        return ToolResult(output=(combined or "(no output)") + footer)

    async def _sh(
        self, script: str, path: str, time_left: float | None, stdin: bytes | None = None
    ) -> bytes:
        result = await self.sandbox.exec(
            ["sh", "-c", _RESOLVE + script, "edit", path],
            stdin=stdin,
            timeout_seconds=_capped(EDIT_TIMEOUT_SECONDS, time_left),
        )
        if result.timed_out:
            raise ToolError(f"the edit of {path} timed out")
        if result.exit_code != 0:
            message = result.stderr.decode("utf-8", errors="replace").strip()
            if "outside /workspace" in message:
                raise ToolError(
                    f"{path} resolves outside /workspace; only the checkout can be read or edited"
                )
            raise ToolError(message or f"the edit failed with exit code {result.exit_code}")
        return result.stdout

    async def _read(self, path: str, time_left: float | None) -> str:
        data = await self._sh(
            '[ -f "$p" ] || { echo "$1 is not a file" >&2; exit 4; }; cat -- "$p"', path, time_left
        )
        return data.decode("utf-8", errors="replace")

    async def _write(self, path: str, text: str, time_left: float | None) -> None:
        await self._sh(
            'mkdir -p -- "$(dirname -- "$p")" && cat > "$p"', path, time_left, stdin=text.encode()
        )

    async def edit(self, tool_input: dict[str, Any], time_left: float | None = None) -> ToolResult:
        command = tool_input.get("command")
        path = workspace_path(tool_input.get("path"))
        if command == "view":
            return await self._view(path, tool_input.get("view_range"), time_left)
        if command == "create":
            text = tool_input.get("file_text")
            if not isinstance(text, str):
                raise ToolError("`file_text` is required to create a file")
            await self._write(path, text, time_left)
            return ToolResult(f"File created successfully at: {path}")
        if command == "str_replace":
            old, new = tool_input.get("old_str"), tool_input.get("new_str", "")
            if not isinstance(old, str) or not old:
                raise ToolError("`old_str` is required and may not be empty")
            if not isinstance(new, str):
                raise ToolError("`new_str` must be a string")
            content = await self._read(path, time_left)
            count = content.count(old)
            if count == 0:
                raise ToolError(
                    f"No replacement was performed, old_str did not appear verbatim in {path}."
                )
            if count > 1:
                lines = [
                    str(i + 1)
                    for i, line in enumerate(content.splitlines())
                    if old.splitlines()[0] in line
                ]
                raise ToolError(
                    "No replacement was performed. Multiple occurrences of old_str in lines "
                    f"{', '.join(lines)}. "
                    "Please ensure it is unique."
                )
            await self._write(path, content.replace(old, new, 1), time_left)
            return ToolResult(f"The file {path} has been edited.")
        if command == "insert":
            line = tool_input.get("insert_line")
            text = tool_input.get("insert_text", tool_input.get("new_str"))
            if not isinstance(line, int) or not isinstance(text, str):
                raise ToolError("`insert_line` (a line number) and `insert_text` are required")
            content = await self._read(path, time_left)
            await self._write(path, inserted(content, line, text), time_left)
            return ToolResult(f"The file {path} has been edited.")
        raise ToolError(f"unknown command {command!r}: use view, create, str_replace or insert")

    async def _view(self, path: str, view_range: Any, time_left: float | None) -> ToolResult:
        kind = (
            await self._sh(
                'if [ -d "$p" ]; then echo dir; elif [ -f "$p" ]; then echo file; '
                "else echo none; fi",
                path,
                time_left,
            )
        ).strip()
        if kind == b"none":
            raise ToolError(f"the path {path} does not exist")
        if kind == b"dir":
            listing = await self._sh(
                'find "$p" -maxdepth 2 -not -path "*/.git" -not -path "*/.git/*" '
                '-not -name ".*" | sort',
                path,
                time_left,
            )
            return ToolResult(
                f"Files and directories up to 2 levels deep in {path}:\n"
                + listing.decode(errors="replace")
            )
        lines = file_lines(await self._read(path, time_left))
        start, end = 1, len(lines)
        if view_range is not None:
            if not (
                isinstance(view_range, list)
                and len(view_range) == 2
                and all(isinstance(v, int) for v in view_range)
            ):
                raise ToolError("`view_range` must be [start, end] line numbers")
            start, end = view_range[0], (len(lines) if view_range[1] == -1 else view_range[1])
            if not 1 <= start <= max(1, len(lines)) or end < start:
                raise ToolError(f"invalid view_range {view_range}: the file has {len(lines)} lines")
        numbered = "\n".join(
            f"{i:6}\t{lines[i - 1]}" for i in range(start, min(end, len(lines)) + 1)
        )
        return ToolResult(f"Here's the result of running `cat -n` on {path}:\n{numbered}")
