"""The scope budget: how large a change Shipmate publishes without a maintainer's word. Pure.

A bug fix that touches thirty files is a review problem, whatever the prompt asked for. A change
is measured in changed files and changed lines (added plus removed, from `git diff --numstat`,
renames detected so a moved file counts once, with only the lines it changed); generated files
(lock files, snapshots) are listed apart and not counted. A change over the budget is held back
(bot/runs/held.py) until a maintainer publishes it with `/shipmate apply --large`.

A line is counted by its size as well: once per `LINE_BYTES` begun, so a program written on one
line (or a minified file rewritten whole) is not one line; and a binary file (a NUL byte is all
it takes, and bash runs such a script) counts its content as lines of text would, old and new.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

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
# In a snapshot folder, the files a snapshot tool writes (syrupy's `.ambr`, and data); never
# source: `__snapshots__/main.py` is code whatever its folder is called.
SNAPSHOT_FOLDER_SUFFIXES = (".snap", ".ambr", ".json", ".txt", ".raw", ".png")
LINE_BYTES = 200
_SHOWN_FILES = 50
_SHOWN_NAME = 160  # characters of a name shown; a longer one is cut in its middle


def is_generated(path: str) -> bool:
    """A lock file or a test snapshot, by name: counted apart from the budget."""
    parts = path.split("/")
    name = parts[-1]
    return (
        name in LOCK_FILES
        or name.endswith(SNAPSHOT_SUFFIXES)
        or (
            name.endswith(SNAPSHOT_FOLDER_SUFFIXES)
            and any(part in SNAPSHOT_FOLDERS for part in parts[:-1])
        )
    )


def line_weight(line: bytes) -> int:
    """A changed line as the budget counts it: once per `LINE_BYTES` begun, an empty one once."""
    return max(1, -(-len(line) // LINE_BYTES))


def content_weight(data: bytes) -> int:
    """A binary file's content counted as lines of text would be."""
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    return sum(line_weight(line) for line in lines) if data else 0


@dataclass(frozen=True)
class FileSize:
    """One changed file: lines added and removed (0 and 0 for a binary file), and the path it
    was renamed from, if it was."""

    path: str
    added: int
    removed: int
    binary: bool = False
    renamed_from: str | None = None
    # The lines the budget counts (long lines by their size, binary content too); None: as git
    # counts them.
    counted: int | None = None

    @property
    def lines(self) -> int:
        return self.added + self.removed if self.counted is None else self.counted

    @property
    def generated(self) -> bool:
        """Counted apart: a generated file, renamed (if it was) from a generated file too."""
        return is_generated(self.path) and (
            self.renamed_from is None or is_generated(self.renamed_from)
        )


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


@dataclass
class PatchFile:
    """One file of a `git diff-tree -p --full-index` patch: its lines as git counts them and as
    the budget does, and for a binary file the blobs whose content the budget counts."""

    header: bytes
    added: int = 0
    removed: int = 0
    counted: int = 0
    binary: bool = False
    blobs: tuple[str, ...] = ()


def patch_files(patch: bytes) -> list[PatchFile]:
    """The files of a patch in its order; a type change's two parts (git shows a file turned
    into a symlink as a deletion and an addition under one header) as one."""
    files: list[PatchFile] = []
    in_hunk = False
    ids: tuple[str, ...] = ()  # the current file's blobs, from its `index` line
    for line in patch.split(b"\n"):
        if line.startswith(b"diff --git "):  # never a hunk's line: those start with +, - or space
            if not (files and files[-1].header == line):
                files.append(PatchFile(line))
            in_hunk, ids = False, ()
        elif not files:
            continue
        elif in_hunk and line[:1] in (b"+", b"-"):
            adds = line[:1] == b"+"
            files[-1].added += adds
            files[-1].removed += not adds
            files[-1].counted += line_weight(line[1:])
        elif line.startswith(b"@@"):
            in_hunk = True
        elif not in_hunk and line.startswith(b"index "):
            ids = tuple(line[6:].split(b" ")[0].decode().split(".."))
        elif not in_hunk and line.startswith(b"Binary files "):
            files[-1].binary = True
            files[-1].blobs += tuple(blob for blob in ids if blob.strip("0"))
    return files


def counted_sizes(
    sizes: list[FileSize], files: list[PatchFile], blob_lines: Mapping[str, int]
) -> list[FileSize]:
    """`sizes` (numstat's) with the lines the budget counts, from the same diff's patch `files`
    and the counted lines of their binary blobs; a `ValueError` when the two disagree."""
    if len(sizes) != len(files):
        raise ValueError(f"the patch has {len(files)} files, numstat {len(sizes)}")
    counted: list[FileSize] = []
    for size, file in zip(sizes, files, strict=True):
        if size.binary != file.binary or (
            not size.binary and (size.added, size.removed) != (file.added, file.removed)
        ):
            raise ValueError(f"the patch and numstat disagree at {_code(size.path)}")
        lines = file.counted + sum(blob_lines[blob] for blob in file.blobs)
        counted.append(replace(size, counted=lines))
    return counted


def _code(path: str) -> str:
    shown = path if path.isprintable() else repr(path)
    if len(shown) > _SHOWN_NAME:
        half = _SHOWN_NAME // 2
        shown = shown[:half] + "…" + shown[-half:]
    return "`" + shown.replace("`", "'") + "`"


def _sized(size: FileSize) -> str:
    counted = f", counted as {size.lines} lines"
    if size.binary:
        return "binary" + (counted if size.counted is not None else "")
    sized = f"+{size.added} −{size.removed}"
    return sized + (f"{counted} (long lines)" if size.lines > size.added + size.removed else "")


def _line(size: FileSize) -> str:
    moved = f" (renamed from {_code(size.renamed_from)})" if size.renamed_from else ""
    return f"- {_code(size.path)}{moved}: {_sized(size)}"


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
