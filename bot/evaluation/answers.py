"""Where an eval's model answers come from: the model itself (every answer recorded), a
recording (`--replay DIR`, offline and deterministic), or an oracle that needs no model
(`--oracle gold` applies the task's reference patch, `--oracle empty` changes nothing).

Each is a `Model`, so every task goes through the same run path whichever answers it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Unpack

from bot.agent.ledger import Usage
from bot.agent.model import Model, ModelRequest, Relay, Reply

PATCH_FILE = "/tmp/shipmate-oracle.patch"  # noqa: S108 - the sandbox's own private /tmp
PATCH_END = "SHIPMATE_ORACLE_PATCH_END"


class RecordingEnded(Exception):
    """The run asked for more answers than were recorded, or asked differently: it diverged
    from its recording."""


def reply_record(reply: Reply, messages: int) -> dict[str, Any]:
    return {
        "messages": messages,
        "content": reply.content,
        "stop_reason": reply.stop_reason,
        "usage": reply.usage.as_dict(),
        "duration_ms": reply.duration_ms,
    }


class RecordingModel(Relay):
    """Passes each request to `model` and appends its answer to `path` (JSON Lines)."""

    def __init__(self, model: Model, path: Path) -> None:
        super().__init__(model)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    async def answered(self, reply: Reply, messages: list[dict[str, Any]]) -> None:
        with self.path.open("a") as out:
            out.write(json.dumps(reply_record(reply, len(messages))) + "\n")


class ReplayModel:
    """Answers from a recording, in order. A request with another number of messages than the
    recorded one means the run went another way: it ends with `RecordingEnded`."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise RecordingEnded(f"no recording at {path}: {exc.strerror}") from None
        self.records = [json.loads(line) for line in lines if line.strip()]
        self.used = 0

    async def reply(self, **request: Unpack[ModelRequest]) -> Reply:
        messages = request["messages"]
        if self.used >= len(self.records):
            raise RecordingEnded(
                f"{self.path.name}: asked for answer {self.used + 1} of "
                f"{len(self.records)} recorded"
            )
        record = self.records[self.used]
        if record["messages"] != len(messages):
            raise RecordingEnded(
                f"{self.path.name}: answer {self.used + 1} was recorded for "
                f"{record['messages']} messages, asked with {len(messages)}"
            )
        self.used += 1
        return Reply(
            content=record["content"],
            stop_reason=record["stop_reason"],
            usage=Usage(**record["usage"]),
            duration_ms=float(record["duration_ms"]),
        )


class OracleModel:
    """Answers without a model: with a patch, a plan, one bash call that applies it inside the
    sandbox, then a summary; without one, a plan to change nothing, then a summary."""

    def __init__(self, name: str, patch: str) -> None:
        self.name = name
        self.patch = patch
        self.answers = 0

    def _text(self, text: str) -> Reply:
        return Reply([{"type": "text", "text": text}], "end_turn", Usage(), 0.0)

    async def reply(self, **request: Unpack[ModelRequest]) -> Reply:
        self.answers += 1
        if self.answers > 1:
            return self._text("Oracle: done.")
        if not self.patch.strip():
            return self._text("Plan (oracle empty): change nothing.")
        command = (
            f"cat > {PATCH_FILE} <<'{PATCH_END}'\n{self.patch}\n{PATCH_END}\n"
            f"cd /workspace && (git apply --whitespace=nowarn {PATCH_FILE} "
            f"|| patch -p1 --forward < {PATCH_FILE})"
        )
        content: list[dict[str, Any]] = [
            {"type": "text", "text": "Plan (oracle gold): apply the reference patch."},
            {
                "type": "tool_use",
                "id": "toolu_oracle_1",
                "name": "bash",
                "input": {"command": command},
            },
        ]
        return Reply(content, "tool_use", Usage(), 0.0)
