"""The change a task made, taken by Shipmate's own git on the host, and the review of it.

Nothing about the change is taken from the sandbox's word: its `.git` and its git belong to
the agent (a `diff.external`, a hand-written patch, an output cap that cuts a header). Once the
agent's last command has ended, the host's git reads the sandbox's /workspace (through the
holder's mount namespace) as a work tree, with a git directory, index and config the sandbox
never saw: hooks off, no system or global config, no attributes drivers. It writes the tree
object the review then judges; what is pushed is a commit of that very tree, so the review and
the branch cannot differ. Paths come from `-z` output; nothing is parsed from quoted text.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import RepoConfig
from bot.runs.workspace import TooLarge, _join, read_entry, touched
from bot.sandbox.checkout import GIT_ENV, SAFE, Checkout
from bot.sandbox.files import read_repo_file
from bot.security.paths import protected_among
from bot.security.scan import scan, scan_diff

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


def take_change(layers: tuple[Path, Path], checkout: Checkout, base_sha: str) -> Change:
    """The tree of what the sandbox's /workspace holds (`layers`: its merged view and the
    overlay's upper layer, seen from the host) as `git add -A` would record it on `base_sha`:
    .gitignore honoured for new files, content as written (no filters)."""
    merged, upper = layers
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
        index = scratch / "index"
        host_git(git_dir, "read-tree", base_sha, index=index)
        base = tracked(git_dir, base_sha)
        found = touched(upper, merged, checkout.tree)
        new = [path for path in found.present if path not in base]
        ignored = ignored_paths(scratch, git_dir, merged, new)
        kept = [path for path in found.present if path not in ignored]
        lines = removals(found.gone, kept, base) + additions(scratch, git_dir, merged, kept)
        host_git_input(git_dir, b"".join(lines), "update-index", "-z", "--index-info", index=index)
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
        found = read_repo_file(merged, _join(folder, ".gitignore"), 1024 * 1024)
        if found is not None:
            (rules / folder).mkdir(parents=True, exist_ok=True)
            (rules / folder / ".gitignore").write_bytes(found.data)
    rules.mkdir(exist_ok=True)
    listed = b"".join(os.fsencode(path) + b"\0" for path in new)
    result = subprocess.run(
        ["git", *SAFE, "check-ignore", "--no-index", "-z", "--stdin"],
        input=listed,
        cwd=rules,
        env={**_env(git_dir), "GIT_WORK_TREE": str(rules)},
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
        patch = host_git(
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
        change.patch = patch.decode("utf-8", errors="replace")


def host_git_input(git_dir: Path, data: bytes, *args: str, index: Path | None = None) -> bytes:
    env = _env(git_dir)
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    result = subprocess.run(
        ["git", *SAFE, *args], input=data, env=env, capture_output=True, cwd=git_dir
    )
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", errors="replace").strip()[:500]
        raise ReviewError(f"git {args[0]} refused the change: {message}")
    return result.stdout


def _env(git_dir: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": os.devnull, **GIT_ENV, "GIT_DIR": str(git_dir)}


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
    findings = scan_diff(change.patch)
    if findings:
        where = ", ".join(sorted({f"{f.path}:{f.line} ({f.rule})" for f in findings}))
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


def shown(path: str) -> str:
    """A path as a reason shows it: control characters and quotes visible, on one line."""
    return repr(path) if not path.isprintable() or '"' in path or "'" in path else path
