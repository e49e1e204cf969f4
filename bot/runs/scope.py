"""The scope budget: how large a change Shipmate publishes without a maintainer's word. Pure.

A bug fix that touches thirty files is a review problem, whatever the prompt asked for. A change
is measured in changed files and changed lines (added plus removed, from `git diff --numstat`,
renames detected so a moved file counts once, with only the lines it changed); generated files
(lock files, snapshots) are listed apart and not counted. A change over the budget is held back
(bot/runs/held.py) until a maintainer publishes it with `/shipmate apply --large`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Files a tool writes, not a person: reviewed by regenerating them, not by reading them.
LOCK_FILES = frozenset(
    {
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "bun.lockb",
        "poetry.lock",
        "Pipfile.lock",
        "pdm.lock",
        "uv.lock",
        "Cargo.lock",
        "go.sum",
        "go.work.sum",
        "Gemfile.lock",
        "composer.lock",
        "mix.lock",
        "pubspec.lock",
        "Podfile.lock",
        "Package.resolved",
        "packages.lock.json",
        "gradle.lockfile",
        "flake.lock",
    }
)
SNAPSHOT_FOLDERS = frozenset({"__snapshots__"})
SNAPSHOT_SUFFIXES = (".snap",)
_SHOWN_FILES = 50


def is_generated(path: str) -> bool:
    """A lock file or a test snapshot, by name: counted apart from the budget."""
    parts = path.split("/")
    name = parts[-1]
    return (
        name in LOCK_FILES
        or name.endswith(SNAPSHOT_SUFFIXES)
        or any(part in SNAPSHOT_FOLDERS for part in parts[:-1])
    )


@dataclass(frozen=True)
class FileSize:
    """One changed file: lines added and removed (0 and 0 for a binary file), and the path it
    was renamed from, if it was."""

    path: str
    added: int
    removed: int
    binary: bool = False
    renamed_from: str | None = None

    @property
    def lines(self) -> int:
        return self.added + self.removed

    @property
    def generated(self) -> bool:
        return is_generated(self.path)


@dataclass(frozen=True)
class ScopeBudget:
    """At most this many counted files and changed lines (`scope:` in .github/shipmate.yml,
    defaults in bot/config/repo.py)."""

    max_files: int
    max_lines: int

    def text(self) -> str:
        return f"{self.max_files} files, {self.max_lines} lines"


@dataclass(frozen=True)
class Scope:
    """A change's files: those the budget counts, and the generated ones listed apart."""

    counted: tuple[FileSize, ...]
    generated: tuple[FileSize, ...] = ()

    @property
    def files(self) -> int:
        return len(self.counted)

    @property
    def lines(self) -> int:
        return sum(size.lines for size in self.counted)

    def over(self, budget: ScopeBudget) -> str | None:
        """Why the change is over `budget`, or None when it fits."""
        excess = []
        if self.files > budget.max_files:
            excess.append(f"{self.files} files (at most {budget.max_files})")
        if self.lines > budget.max_lines:
            excess.append(f"{self.lines} changed lines (at most {budget.max_lines})")
        return " and ".join(excess) or None


def measure(sizes: Iterable[FileSize]) -> Scope:
    counted: list[FileSize] = []
    generated: list[FileSize] = []
    for size in sorted(sizes, key=lambda size: size.path):
        (generated if size.generated else counted).append(size)
    return Scope(tuple(counted), tuple(generated))


def parse_numstat(raw: bytes) -> list[FileSize]:
    """`git diff-tree -r -z --numstat -M` output: `ADDED\\tREMOVED\\tPATH\\0`, or for a rename
    `ADDED\\tREMOVED\\t\\0OLD\\0NEW\\0`; `-` for both counts of a binary file."""
    fields = raw.split(b"\0")
    sizes: list[FileSize] = []
    at = 0
    while at < len(fields) and fields[at]:
        added, removed, path = fields[at].split(b"\t", 2)
        at += 1
        renamed_from = None
        if not path:  # a rename: its two paths follow as fields of their own
            renamed_from, path = _name(fields[at]), fields[at + 1]
            at += 2
        binary = added == b"-"
        sizes.append(
            FileSize(
                _name(path),
                0 if binary else int(added),
                0 if binary else int(removed),
                binary=binary,
                renamed_from=renamed_from,
            )
        )
    return sizes


def _name(path: bytes) -> str:
    return path.decode("utf-8", errors="surrogateescape")


def _code(path: str) -> str:
    shown = path if path.isprintable() else repr(path)
    return "`" + shown.replace("`", "'") + "`"


def _line(size: FileSize) -> str:
    sized = "binary" if size.binary else f"+{size.added} −{size.removed}"
    moved = f" (renamed from {_code(size.renamed_from)})" if size.renamed_from else ""
    return f"- {_code(size.path)}{moved}: {sized}"


def _listing(sizes: tuple[FileSize, ...]) -> list[str]:
    lines = [_line(size) for size in sizes[:_SHOWN_FILES]]
    if len(sizes) > _SHOWN_FILES:
        lines.append(f"- … and {len(sizes) - _SHOWN_FILES} more")
    return lines


def held_text(scope: Scope, budget: ScopeBudget, why: str) -> str:
    """What the sticky comment says of a change held back for its size: the files with their
    sizes, the budget, and how to go on."""
    parts = [
        f"The change was held back: it is larger than this repository's scope budget, with "
        f"{why}. Nothing was pushed.",
        f"**Changed files** ({scope.files} files, {scope.lines} lines; budget "
        f"{budget.text()})\n\n" + "\n".join(_listing(scope.counted)),
    ]
    if scope.generated:
        parts.append(
            "**Generated files** (listed apart, not counted)\n\n"
            + "\n".join(_listing(scope.generated))
        )
    parts.append(
        "To go on: a maintainer comments `/shipmate apply --large` to publish this change as it "
        "is, or `/shipmate fix <narrower notes>` runs again with a smaller task. The budget is "
        "`scope: {max_files, max_lines}` in `.github/shipmate.yml`."
    )
    return "\n\n".join(parts)
