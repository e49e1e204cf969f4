"""What a `run` job is asked to do: a frozen `RunRequest`, built by `enqueue_run` from the `Task`
a handler decided on, stored as the job's payload, and read back, validated, by the run.

The payload keeps the flat shape of earlier versions (`repo`, `number`, `verb`, ..., and the task's
`pr`, `notes`, `fork`, `base_sha`, `task`, `feedback`, `feedback_label`, `title`, `publish`), so
jobs queued before an upgrade, and the tasks recorded for `/shipmate retry`, still read. A
payload that is not a run request raises `BadRunRequest` naming the field: the job fails once,
clearly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, field, replace
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)
from pydantic.dataclasses import dataclass

RunVerb = Literal["fix", "plan", "repair", "revise"]
RUN_VERBS: tuple[RunVerb, ...] = ("fix", "plan", "repair", "revise")
T = TypeVar("T")
_REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}")
_SHA = r"^[0-9a-f]{7,64}$"
# A run id: its job's key, then `.2`, `.3`, ... for later attempts (bot/runs/attempts.py).
_RUN_ID = r"^[0-9a-f]{6,40}(\.[0-9]{1,4})?$"


def _repository_name(name: str) -> str:
    """ "owner/name" as GitHub spells them (the name is used in paths and branch names)."""
    if not _REPOSITORY.fullmatch(name) or name.split("/")[1] in (".", ".."):
        raise ValueError("not an owner/name repository")
    return name


Repository = Annotated[StrictStr, AfterValidator(_repository_name)]
Positive = Annotated[StrictInt, Field(gt=0)]
Sha = Annotated[StrictStr, Field(pattern=_SHA)]
# Unknown fields are an error, and no type is coerced ("5" is not 5, 1 is not True).
_CONFIG = ConfigDict(extra="forbid")


class BadRunRequest(ValueError):
    """A payload that is not a run request. `str()` names the field and what is wrong."""


def run_verb(verb: str) -> RunVerb:
    """`verb` if a run does it (fix, plan, repair, revise); raises `BadRunRequest`."""
    for known in RUN_VERBS:
        if verb == known:
            return known
    raise BadRunRequest(f"verb: no run does {verb!r}")


@dataclass(frozen=True, config=_CONFIG)
class PullTarget:
    """The pull request a run pushes onto: its branch, the head it starts from, and the review
    comments to answer in their threads."""

    number: Positive
    head_ref: Annotated[StrictStr, Field(min_length=1)]
    head_sha: Sha
    reply_to: tuple[StrictInt, ...] = ()


@dataclass(frozen=True, config=_CONFIG)
class Task:
    """What to do, as a handler decided it; `/shipmate retry` repeats it. `instruction` is the
    task's sentence (the payload's `task`); without one, the run resolves the issue."""

    instruction: StrictStr | None = None
    pr: PullTarget | None = None
    notes: StrictStr = ""
    fork: StrictBool = False
    base_sha: Sha | None = None
    feedback: StrictStr | None = None
    feedback_label: StrictStr | None = None
    title: StrictStr | None = None
    # `/shipmate apply --large`: publish the change this run held back for its size, as it was
    # reviewed, instead of running the agent (bot/runs/held.py); a retried attempt held it too.
    publish: Annotated[StrictStr, Field(pattern=_RUN_ID)] | None = None

    def fields(self) -> dict[str, Any]:
        """The payload's task fields: those set, under their payload names."""
        values = asdict(self)
        values["task"] = values.pop("instruction")
        defaults = {"notes": "", "fork": False}
        return {k: v for k, v in values.items() if v is not None and defaults.get(k) != v}

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> Task:
        """The task of a payload or of a recorded run; raises `BadRunRequest`."""
        values = {("instruction" if k == "task" else k): v for k, v in fields.items()}
        return _validated(_TASK, values)

    def starting_at(self, head_sha: str) -> Task:
        """This task with its pull request's head brought up to `head_sha`."""
        if self.pr is None:
            return self
        return replace(self, pr=replace(self.pr, head_sha=head_sha))


ENVELOPE = ("repo", "number", "verb", "installation_id", "delivery_id", "actor")


@dataclass(frozen=True, config=_CONFIG)
class RunRequest:
    """One `run` job: where (repository, issue or PR number, installation), what (`verb` and
    `task`), who asked (the delivery and its sender), and the sticky comment that shows it."""

    repo: Repository
    number: Positive
    verb: RunVerb
    installation_id: Positive
    task: Task = field(default_factory=Task)
    delivery_id: StrictStr | None = None
    actor: StrictStr | None = None
    sticky_comment_id: Positive | None = None

    def to_payload(self) -> dict[str, Any]:
        envelope = {name: getattr(self, name) for name in ENVELOPE}
        return {**envelope, "sticky_comment_id": self.sticky_comment_id, **self.task.fields()}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> RunRequest:
        """The request a job's payload holds; raises `BadRunRequest` naming the bad field."""
        if not isinstance(payload, Mapping):
            raise BadRunRequest("the payload is not an object")
        known = (*ENVELOPE, "sticky_comment_id")
        envelope = {k: v for k, v in payload.items() if k in known}
        task = Task.from_fields({k: v for k, v in payload.items() if k not in known})
        return _validated(_REQUEST, {**envelope, "task": task})


_TASK = TypeAdapter(Task)
_REQUEST = TypeAdapter(RunRequest)


def _validated(adapter: TypeAdapter[T], values: Mapping[str, Any]) -> T:
    try:
        return adapter.validate_python(dict(values))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "payload"
        where = "task" if where == "instruction" else where.replace("instruction", "task")
        raise BadRunRequest(f"{where}: {error['msg']}") from None
