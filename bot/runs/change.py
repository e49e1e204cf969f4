"""A task's change as Shipmate's own git holds it: a tree on top of the base commit in a git
directory on the host that the sandbox never saw, the paths it changes (from `-z` output, never
parsed from quoted text), their sizes and symlink targets, and the patch shown to people. The
git run here has hooks off, no system or global config and none of the sandbox's."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bot.sandbox.checkout import GIT_ENV, SAFE

# A change whose new contents pass this is refused whole, never shown or pushed cut.
MAX_CHANGE_BYTES = 4 * 1024 * 1024
SYMLINK, GITLINK = "120000", "160000"
# The work tree is the agent's: its stat data may lie, but what git then skips is not pushed
# either (the pushed tree is the reviewed one). Attributes may not run anything: no drivers.
REVIEW_CONFIG = (
    "-c",
    "core.checkStat=minimal",
    "-c",
    "core.trustctime=false",
    "-c",
    "core.autocrlf=false",
    "-c",
    "core.symlinks=true",
    "-c",
    "core.filemode=true",
    "-c",
    "core.quotePath=false",
    "-c",
    "core.untrackedCache=false",
    "-c",
    "advice.addEmbeddedRepo=false",
)


class ReviewError(Exception):
    """The host could not take the change (git refused a path, a file could not be read)."""


class ChangeTooLarge(Exception):
    """The change passes what is reviewed: held back whole, never shown or pushed cut."""


@dataclass(frozen=True)
class Changed:
    """One path of the change, from `git diff-tree -z --raw` (no renames: both ends appear)."""

    path: str
    status: str
    old_mode: str
    new_mode: str
    new_object: str


@dataclass
class Change:
    """A reviewed tree on top of `base_sha`, held in a host-only git directory until pushed."""

    git_dir: Path
    base_sha: str
    tree: str
    changed: list[Changed] = field(default_factory=list)
    patch: str = ""
    new_bytes: int = 0
    symlinks: dict[str, str] = field(default_factory=dict)  # path -> target
    # path -> content of each binary file the change writes: the patch shows none of it.
    binary: dict[str, bytes] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.changed

    def discard(self) -> None:
        shutil.rmtree(self.git_dir.parent, ignore_errors=True)


def host_git(
    git_dir: Path, *args: str, work_tree: Path | None = None, index: Path | None = None
) -> bytes:
    """git on the host over our own git directory: nothing from the sandbox configures it."""
    env = {"PATH": "/usr/bin:/bin", "HOME": os.devnull, **GIT_ENV, "GIT_DIR": str(git_dir)}
    if work_tree is not None:
        env["GIT_WORK_TREE"] = str(work_tree)
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    result = subprocess.run(
        ["git", *SAFE, *REVIEW_CONFIG, *args],
        cwd=work_tree or git_dir,
        env=env,
        capture_output=True,
    )
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", errors="replace").strip()[:500]
        raise ReviewError(f"git {args[0]} refused the change: {message}")
    return result.stdout


def changed_entries(git_dir: Path, base_sha: str, tree: str) -> list[Changed]:
    raw = host_git(git_dir, "diff-tree", "-r", "-z", "--no-renames", "--raw", base_sha, tree)
    fields = raw.split(b"\0")
    entries: list[Changed] = []
    for header, path in zip(fields[0::2], fields[1::2], strict=False):
        if not header.startswith(b":"):
            continue
        old_mode, new_mode, _, new_object, status = header[1:].decode().split(" ")
        name = path.decode("utf-8", errors="surrogateescape")
        entries.append(Changed(name, status, old_mode, new_mode, new_object))
    return entries


def describe(change: Change) -> None:
    """Sizes, symlink targets and (when it fits) the patch shown to people and scanned."""
    added = [entry for entry in change.changed if entry.status != "D"]
    if added:
        batch = "".join(f"{entry.new_object}\n" for entry in added if entry.new_mode != GITLINK)
        sizes = host_git_input(
            change.git_dir, batch.encode(), "cat-file", "--batch-check=%(objectsize)"
        )
        change.new_bytes = sum(int(line) for line in sizes.split())
    for entry in added:
        if entry.new_mode == SYMLINK:
            target = host_git(change.git_dir, "cat-file", "blob", entry.new_object)
            change.symlinks[entry.path] = target.decode("utf-8", errors="surrogateescape")
    if change.changed and change.new_bytes <= MAX_CHANGE_BYTES:
        change.patch = patch_bytes(change).decode("utf-8", errors="replace")
        change.binary = binary_contents(change, added)


def binary_contents(change: Change, added: list[Changed]) -> dict[str, bytes]:
    """The new content of each file git shows as binary (`-` counts in `--numstat`)."""
    numstat = host_git(
        change.git_dir,
        *("diff-tree", "-r", "-z", "--numstat", "--no-renames", "--no-ext-diff", "--no-textconv"),
        change.base_sha,
        change.tree,
    )
    binary = {path for path in numstat.split(b"\0") if path.startswith(b"-\t-\t")}
    objects = {
        entry.new_object: entry.path
        for entry in added
        if entry.new_mode not in (GITLINK, SYMLINK)
        and b"-\t-\t" + entry.path.encode("utf-8", errors="surrogateescape") in binary
    }
    found = blob_contents(change.git_dir, sorted(objects))
    return {objects[blob]: data for blob, data in found.items()}


def blob_contents(git_dir: Path, blobs: list[str]) -> dict[str, bytes]:
    """The content of each blob, read by one `git cat-file --batch`."""
    output = host_git_input(
        git_dir, "".join(f"{blob}\n" for blob in blobs).encode(), "cat-file", "--batch"
    )
    found: dict[str, bytes] = {}
    at = 0
    while at < len(output):
        end = output.index(b"\n", at)
        blob, kind, size = output[at:end].decode().split(" ")
        if kind != "blob":
            raise ReviewError(f"{blob} is a {kind}, not a blob")
        found[blob] = output[end + 1 : end + 1 + int(size)]
        at = end + 2 + int(size)
    return found


def patch_bytes(change: Change) -> bytes:
    """The change as a patch `git apply --binary` rebuilds exactly: full object ids, binary
    contents, modes and symlinks, no renames and none of the repository's diff drivers."""
    return host_git(
        change.git_dir,
        "diff-tree",
        "-p",
        "--binary",
        "--no-renames",
        "--full-index",
        "--no-ext-diff",
        "--no-textconv",
        change.base_sha,
        change.tree,
    )


def host_git_input(git_dir: Path, data: bytes, *args: str, index: Path | None = None) -> bytes:
    env = host_env(git_dir)
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    result = subprocess.run(
        ["git", *SAFE, *args], input=data, env=env, capture_output=True, cwd=git_dir
    )
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", errors="replace").strip()[:500]
        raise ReviewError(f"git {args[0]} refused the change: {message}")
    return result.stdout


def host_env(git_dir: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": os.devnull, **GIT_ENV, "GIT_DIR": str(git_dir)}


def update_index(git_dir: Path, index: Path, lines: list[bytes]) -> None:
    """Apply `--index-info` lines. git skips a path it will not record (`.git` in any of its
    disguises, `..`) with only a warning: here that ends the change with git's words, rather
    than leaving the path out without a word."""
    env = {**host_env(git_dir), "GIT_INDEX_FILE": str(index)}
    result = subprocess.run(
        ["git", *SAFE, "update-index", "-z", "--index-info"],
        input=b"".join(lines),
        env=env,
        capture_output=True,
        cwd=git_dir,
    )
    message = result.stderr.decode("utf-8", errors="replace").strip()
    if result.returncode != 0 or message:
        raise ReviewError(f"git update-index refused the change: {message[:500]}")
