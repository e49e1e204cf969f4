"""The change a task made, taken by Shipmate's own git on the host, and the review of it.

Nothing about the change is taken from the sandbox's word: its `.git` and its git belong to
the agent (a `diff.external`, a hand-made patch, an index it rewrote, an output cap that cuts a
header). Once the agent's last command has ended, the host reads the sandbox's /workspace (the
overlay's layers, bot/runs/workspace.py) and writes the tree with its own git into a git
directory the sandbox never saw (bot/runs/change.py). The review judges that tree; what is
pushed is a commit of that very tree, so the review and the branch cannot differ.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bot.config import RepoConfig
from bot.runs.change import (
    GITLINK,
    MAX_CHANGE_BYTES,
    Change,
    ChangeTooLarge,
    ReviewError,
    blob_contents,
    changed_entries,
    describe,
    host_env,
    host_git,
    host_git_input,
    update_index,
)
from bot.runs.scope import (
    Scope,
    ScopeBudget,
    content_weight,
    counted_sizes,
    measure,
    parse_numstat,
    patch_files,
)
from bot.runs.workspace import TooLarge, join_path, read_entry, touched
from bot.sandbox.checkout import SAFE, Checkout
from bot.security.files import read_repo_file
from bot.security.paths import protected_among
from bot.security.scan import scan, scan_diff


def take_change(layers: tuple[Path, Path], checkout: Checkout, base_sha: str) -> Change:
    """The tree of what the sandbox's /workspace holds (`layers`: its merged view and the
    overlay's upper layer, seen from the host) as `git add -A` would record it on `base_sha`:
    .gitignore honoured for new files, content as written (no filters)."""
    merged, upper = layers
    for layer in layers:
        # Never read a missing layer as an empty one: that would be "every file deleted".
        if not layer.is_dir() or layer.is_symlink():
            raise ReviewError(f"the sandbox's workspace cannot be read at {layer}")
    scratch, git_dir = review_git_dir(checkout)
    try:
        index = scratch / "index"
        host_git(git_dir, "read-tree", base_sha, index=index)
        base = tracked(git_dir, base_sha)
        found = touched(upper, merged, checkout.tree)
        new = [path for path in found.present if path not in base]
        ignored = ignored_paths(scratch, git_dir, merged, new)
        kept = [path for path in found.present if path not in ignored]
        lines = removals(found.gone, kept, base) + additions(scratch, git_dir, merged, kept)
        update_index(git_dir, index, lines)
        tree = host_git(git_dir, "write-tree", index=index).decode().strip()
        change = Change(git_dir, base_sha, tree)
        change.changed = changed_entries(git_dir, base_sha, tree)
        describe(change)
        return change
    except TooLarge as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise ChangeTooLarge(
            f"the change is too large to review: its new content passes {MAX_CHANGE_BYTES} "
            f"bytes (at {shown(str(exc))})"
        ) from None
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def review_git_dir(checkout: Checkout) -> tuple[Path, Path]:
    """A scratch folder and, in it, a new git directory of ours that reads the checkout's
    objects (the base commit's) through alternates; the caller removes the scratch folder."""
    scratch = Path(tempfile.mkdtemp(prefix="shipmate-review-"))
    git_dir = scratch / "review.git"
    try:
        git_dir.mkdir()
        host_git(git_dir, "init", "--quiet")
        host_git(git_dir, "config", "core.bare", "false")
        stores = [checkout.mirror / "objects", checkout.tree / ".git" / "objects"]
        (git_dir / "objects" / "info" / "alternates").write_text(
            "".join(f"{store}\n" for store in stores if store.is_dir())
        )
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return scratch, git_dir


def rebuild_change(checkout: Checkout, patch: bytes, tree: str) -> Change:
    """A held-back change again, from its patch on the checkout's commit: exactly the tree that
    was reviewed (`tree`), or a `ReviewError`."""
    base_sha = checkout.sha
    scratch, git_dir = review_git_dir(checkout)
    try:
        index = scratch / "index"
        host_git(git_dir, "read-tree", base_sha, index=index)
        apply = ("apply", "--cached", "--binary", "--whitespace=nowarn", "-")
        host_git_input(git_dir, patch, *apply, index=index)
        rebuilt = host_git(git_dir, "write-tree", index=index).decode().strip()
        if rebuilt != tree:
            raise ReviewError(f"the patch rebuilds tree {rebuilt}, not the reviewed {tree}")
        change = Change(git_dir, base_sha, tree)
        change.changed = changed_entries(git_dir, base_sha, tree)
        describe(change)
        return change
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def tracked(git_dir: Path, base_sha: str) -> set[str]:
    listed = host_git(git_dir, "ls-tree", "-r", "-z", "--name-only", "--full-tree", base_sha)
    return {os.fsdecode(path) for path in listed.split(b"\0") if path}


def ignored_paths(scratch: Path, git_dir: Path, merged: Path, new: list[str]) -> set[str]:
    """Which new paths .gitignore files (of the merged view, copied out) ignore."""
    if not new:
        return set()
    rules = scratch / "rules"
    folders = {""} | {
        "/".join(path.split("/")[:depth]) for path in new for depth in range(1, path.count("/") + 1)
    }
    for folder in folders:
        found = read_repo_file(merged, join_path(folder, ".gitignore"), 1024 * 1024)
        if found is not None:
            (rules / folder).mkdir(parents=True, exist_ok=True)
            (rules / folder / ".gitignore").write_bytes(found.data)
    rules.mkdir(exist_ok=True)
    listed = b"".join(os.fsencode(path) + b"\0" for path in new)
    result = subprocess.run(
        ["git", *SAFE, "check-ignore", "--no-index", "-z", "--stdin"],
        input=listed,
        cwd=rules,
        env={**host_env(git_dir), "GIT_WORK_TREE": str(rules)},
        capture_output=True,
    )
    if result.returncode not in (0, 1):
        raise ReviewError(f"git check-ignore failed: {result.stderr.decode(errors='replace')}")
    return {os.fsdecode(path) for path in result.stdout.split(b"\0") if path}


def removals(gone: list[str], kept: list[str], base: set[str]) -> list[bytes]:
    """Index lines removing every base path at or beneath a gone one, or in a kept one's way."""
    zero = "0" * 40
    in_the_way = set(gone) | {
        path.rsplit("/", depth)[0] for path in kept for depth in range(1, path.count("/") + 1)
    }
    doomed = {path for path in base if path in in_the_way}
    doomed |= {path for path in base for prefix in gone if path.startswith(prefix + "/")}
    return [f"0 {zero}\t".encode() + os.fsencode(path) + b"\0" for path in sorted(doomed)]


def additions(scratch: Path, git_dir: Path, merged: Path, kept: list[str]) -> list[bytes]:
    """Index lines for the kept paths, their blobs written from copies in `scratch` (ours)."""
    blobs = scratch / "blobs"
    blobs.mkdir()
    entries: list[tuple[str, str, Path]] = []
    total = 0
    for path in kept:
        entry = read_entry(merged, path, MAX_CHANGE_BYTES - total)
        if entry is None:
            continue
        total += len(entry.content)
        copy = blobs / str(len(entries))
        copy.write_bytes(entry.content)
        entries.append((entry.mode, path, copy))
    if not entries:
        return []
    listed = "".join(f"{copy}\n" for _, _, copy in entries).encode()
    shas = host_git_input(git_dir, listed, "hash-object", "-w", "--no-filters", "--stdin-paths")
    return [
        f"{mode} {sha}\t".encode() + os.fsencode(path) + b"\0"
        for (mode, path, _), sha in zip(entries, shas.decode().split(), strict=True)
    ]


def escapes(path: str, target: str) -> bool:
    """Whether a symlink at `path` with `target` points outside the tree (or into `.git`)."""
    if not target or target.startswith("/") or "\0" in target:
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    parts = joined.split("/")
    return joined.startswith("..") or any(part.casefold() == ".git" for part in parts)


@dataclass(frozen=True)
class HeldBack:
    reason: str


def review(change: Change, config: RepoConfig) -> HeldBack | None:
    """Why a change must not be pushed (too large, a secret, a protected path, a symlink that
    leaves the repository, a submodule), or None. Findings name rule, file and line only."""
    if change.new_bytes > MAX_CHANGE_BYTES:
        return HeldBack(
            f"the change is too large to review: {change.new_bytes} bytes of new content "
            f"(at most {MAX_CHANGE_BYTES})"
        )
    found = {f"{f.path}:{f.line} ({f.rule})" for f in scan_diff(change.patch)}
    for path, data in change.binary.items():  # bytes as they are: a secret's are ASCII
        found |= {f"{shown(path)} ({f.rule})" for f in scan(data.decode("latin-1"))}
    if found:
        where = ", ".join(sorted(found))
        return HeldBack(f"the change contains what looks like a secret: {where}")
    paths = [entry.path for entry in change.changed]
    if any(scan(path) for path in paths):
        # Never named: the reason would carry the secret to wherever reasons go.
        return HeldBack("the change has a file whose name looks like a secret")
    protected = protected_among(paths, config)
    if protected:
        return HeldBack(
            "the change touches protected paths: "
            + ", ".join(shown(path) for path in protected)
            + " (a maintainer can opt in with allow_paths in .github/shipmate.yml)"
        )
    leaving = sorted(path for path, target in change.symlinks.items() if escapes(path, target))
    if leaving:
        return HeldBack(
            "the change adds symlinks that point outside the repository: "
            + ", ".join(shown(path) for path in leaving)
        )
    submodules = [e.path for e in change.changed if GITLINK in (e.old_mode, e.new_mode)]
    if submodules:
        return HeldBack("the change touches submodules: " + ", ".join(map(shown, submodules)))
    return None


def measure_scope(change: Change) -> Scope:
    """The change's size for the scope budget (bot/runs/scope.py), renames detected: numstat's
    files and lines, each line counted by its size and each binary file by its content."""
    diff = ("diff-tree", "-r", "-M", "--no-ext-diff", "--no-textconv")
    numstat = host_git(change.git_dir, *diff, "-z", "--numstat", change.base_sha, change.tree)
    patch = host_git(change.git_dir, *diff, "-p", "--full-index", change.base_sha, change.tree)
    files = patch_files(patch)
    wanted = sorted({blob for file in files for blob in file.blobs})
    lines = {
        blob: content_weight(data) for blob, data in blob_contents(change.git_dir, wanted).items()
    }
    try:
        return measure(counted_sizes(parse_numstat(numstat), files, lines))
    except (ValueError, KeyError) as exc:
        raise ReviewError(f"the change could not be measured: {exc}") from None


def scope_budget(config: RepoConfig) -> ScopeBudget:
    return ScopeBudget(config.scope.max_files, config.scope.max_lines)


def shown(path: str) -> str:
    """A path as a reason shows it: control characters and quotes visible, on one line."""
    return repr(path) if not path.isprintable() or '"' in path or "'" in path else path
