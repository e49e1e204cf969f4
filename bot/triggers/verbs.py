"""Find `/shipmate <verb>` commands in a comment. Pure.

A command counts only at the start of a line of the comment's own text: not inside a quote
(`> ...`), a fenced or indented code block, inline code, or an HTML comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VERBS: dict[str, str] = {
    "plan": "post a plan and change nothing",
    "fix": "plan, change, run the tests and open a pull request (`fix <notes>` adds notes)",
    "apply": "carry out the last plan posted here (`apply --large`: a maintainer publishes a "
    "change held back for its size)",
    "stop": "cancel the task that is running",
    "retry": "run the last task again",
    "status": "say what is running and what it has cost",
    "help": "show this list",
}

# The flags each verb takes; a flag is a word of its own in the command's line.
FLAGS: dict[str, frozenset[str]] = {"apply": frozenset({"--large"})}
KNOWN_FLAGS = frozenset().union(*FLAGS.values())
_HTML_COMMENT = re.compile(r"<!--[\s\S]*?(?:-->|$)")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class Command:
    """One command. `verb` is lower-case; `known` says whether it is one of VERBS. `flags` are
    the known flags it was given (taken out of `args`), whether or not its verb takes them."""

    verb: str
    args: str
    line: int
    flags: frozenset[str] = frozenset()

    @property
    def known(self) -> bool:
        return self.verb in VERBS

    @property
    def large(self) -> bool:
        return "--large" in self.flags and "--large" in FLAGS.get(self.verb, ())

    @property
    def misplaced(self) -> list[str]:
        """The flags given that this verb does not take."""
        return sorted(self.flags - FLAGS.get(self.verb, frozenset()))


def parse_commands(body: str | None, app_slug: str | None = None) -> list[Command]:
    """Every command in `body`, in order. `@<app_slug> <verb>` works like `/shipmate <verb>`."""
    if not body:
        return []
    prefixes = ["/shipmate"]
    if app_slug:
        prefixes.append(f"@{app_slug}")
    trigger = re.compile(
        r"^(?:" + "|".join(re.escape(p) for p in prefixes) + r")(?:\[bot\])?(?:\s+(\S+))?(.*)$",
        re.IGNORECASE,
    )
    text = _HTML_COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), body.replace("\r\n", "\n"))
    commands: list[Command] = []
    fence: str | None = None
    for number, raw in enumerate(text.split("\n"), start=1):
        opening = _FENCE.match(raw)
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = None
            continue
        if opening:
            fence = opening.group(1)
            continue
        if raw.startswith(("    ", "\t")) or raw.lstrip().startswith(">"):
            continue
        match = trigger.match(raw.strip())
        if match is None:
            continue
        verb = (match.group(1) or "help").lower().rstrip(".,:;!")
        args, flags = _flags(match.group(2).strip())
        commands.append(Command(verb=verb, args=args, line=number, flags=flags))
    return commands


def _flags(args: str) -> tuple[str, frozenset[str]]:
    """`args` without the known flags among its words, and those flags."""
    words = args.split()
    flags = frozenset(word.lower() for word in words if word.lower() in KNOWN_FLAGS)
    if not flags:
        return args, flags
    return " ".join(word for word in words if word.lower() not in KNOWN_FLAGS), flags


def help_text(app_slug: str | None = None) -> str:
    """The reply to `help` and to an unknown verb."""
    rows = "\n".join(f"| `/shipmate {verb}` | {what} |" for verb, what in VERBS.items())
    mention = f" (or `@{app_slug} <verb>`)" if app_slug else ""
    return (
        f"Commands start a line of a new comment{mention}:\n\n"
        f"| command | what it does |\n|---|---|\n{rows}\n\n"
        "Only people with write access to this repository can start or stop a task."
    )
