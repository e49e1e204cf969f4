"""The reviewed change becomes Shipmate's commit through GitHub's Git database API, so GitHub
signs it and shows it Verified (what branch protection's "Require signed commits" asks for).

The local commit stays the source of what changed: its paths and modes come from `git diff-tree
-z --raw` between the base and that commit, each blob from Shipmate's own git directory (sent
base64, so binary files and symlink targets go byte for byte). Git's hashes are deterministic:
each blob GitHub stores, and the tree it builds, must have the local sha, or nothing is
committed. The branch moves only by a fast-forward from the commit the run started on (a new
branch is created only where none is); when it moved, nothing is pushed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.github.git_data import GitCommit, GitDatabase, RefRefused
from bot.runs.change import GITLINK, Change, Changed, changed_entries, host_git, host_git_input
from bot.runs.publish import local_commit

# Blobs in flight at once: GitHub counts content-creating requests towards its secondary
# limits, so a large change goes a few at a time (and the retry policy waits out a limit).
BLOB_CONCURRENCY = 3
# Tree entries per request; a larger change is several trees, each built on the last.
TREE_BATCH = 500


class NotPublished(Exception):
    """Nothing was pushed; the message says why, for the sticky comment."""


class TreeMismatch(NotPublished):
    """What GitHub stored differs from what was reviewed."""


class BranchMoved(NotPublished):
    """GitHub refused to move the branch: it no longer is where the run started."""


@dataclass(frozen=True)
class TreeItem:
    """One entry of a tree request; `sha` None deletes the path."""

    path: str
    mode: str
    type: str
    sha: str | None

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "mode": self.mode, "type": self.type, "sha": self.sha}


def object_kind(mode: str) -> str:
    return {GITLINK: "commit", "040000": "tree"}.get(mode, "blob")


def tree_items(changed: Sequence[Changed]) -> list[TreeItem]:
    """The tree request that turns the base tree into the changed one: deletions first (a file
    that becomes a folder is gone before the folder's files arrive), then every added,
    modified or retyped path with its new mode (100644, 100755, 120000 for a symlink, whose
    blob is its target, 160000 for a submodule's commit)."""
    gone = [
        TreeItem(entry.path, entry.old_mode, object_kind(entry.old_mode), None)
        for entry in changed
        if entry.status == "D"
    ]
    kept = [
        TreeItem(entry.path, entry.new_mode, object_kind(entry.new_mode), entry.new_object)
        for entry in changed
        if entry.status != "D"
    ]
    return gone + kept


def blobs_to_send(changed: Sequence[Changed]) -> list[str]:
    """Each new blob once (two files with the same content are one blob), in path order."""
    wanted = (e.new_object for e in changed if e.status != "D" and e.new_mode != GITLINK)
    return list(dict.fromkeys(wanted))


def batches(items: Sequence[TreeItem], size: int = TREE_BATCH) -> list[list[TreeItem]]:
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def read_blobs(git_dir: Path, shas: Sequence[str]) -> dict[str, bytes]:
    """sha -> content, read from our git directory in one `cat-file --batch`."""
    if not shas:
        return {}
    out = host_git_input(
        git_dir, "".join(f"{sha}\n" for sha in shas).encode(), "cat-file", "--batch"
    )
    found: dict[str, bytes] = {}
    position = 0
    for sha in shas:
        end = out.index(b"\n", position)
        name, kind, size = out[position:end].decode().split(" ")
        if name != sha or kind != "blob":
            raise TreeMismatch(f"{sha} is not a blob in the reviewed change")
        start = end + 1
        found[sha] = out[start : start + int(size)]
        position = start + int(size) + 1
    return found


async def send_blobs(
    database: GitDatabase, contents: Mapping[str, bytes], concurrency: int = BLOB_CONCURRENCY
) -> None:
    """Every blob to GitHub, `concurrency` at a time; each must come back with its own sha."""
    gate = asyncio.Semaphore(concurrency)

    async def send(sha: str, content: bytes) -> None:
        async with gate:
            stored = await database.create_blob(content)
        if stored != sha:
            raise TreeMismatch(f"GitHub stored blob {stored} for {sha}; nothing was pushed")

    try:
        async with asyncio.TaskGroup() as group:
            for sha, content in contents.items():
                group.create_task(send(sha, content))
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None  # the first failure; the others were cancelled


@dataclass(frozen=True)
class Prepared:
    """The local commit of the reviewed change, read for GitHub."""

    changed: list[Changed]
    base_tree: str
    reviewed_tree: str
    contents: dict[str, bytes]


def prepare(change: Change, message: str) -> Prepared:
    local = local_commit(change, message)
    changed = changed_entries(change.git_dir, change.base_sha, local)
    base_tree, reviewed = (
        host_git(change.git_dir, "rev-parse", f"{commit}^{{tree}}").decode().strip()
        for commit in (change.base_sha, local)
    )
    return Prepared(
        changed, base_tree, reviewed, read_blobs(change.git_dir, blobs_to_send(changed))
    )


async def commit_through_api(
    database: GitDatabase,
    change: Change,
    message: str,
    *,
    branch: str,
    new_branch: bool,
    tree_batch: int = TREE_BATCH,
) -> GitCommit:
    """Make the reviewed change's commit on GitHub and move `branch` to it (create it when
    `new_branch`). Raises NotPublished, the branch untouched, when anything differs."""
    commit = await make_commit(database, change, message, tree_batch=tree_batch)
    await move_branch(database, branch, commit.sha, new_branch=new_branch)
    return commit


async def make_commit(
    database: GitDatabase,
    change: Change,
    message: str,
    *,
    parent: str | None = None,
    tree_batch: int = TREE_BATCH,
) -> GitCommit:
    """The reviewed change's commit on GitHub, on `parent` (its base by default; a retried run
    builds on the commit an earlier attempt of its job pushed). No branch moves. Raises
    NotPublished when what GitHub stored differs from what was reviewed."""
    prepared = await asyncio.to_thread(prepare, change, message)
    reviewed = prepared.reviewed_tree
    await send_blobs(database, prepared.contents)
    tree = prepared.base_tree
    for batch in batches(tree_items(prepared.changed), tree_batch):
        tree = await database.create_tree(tree, [item.as_json() for item in batch])
    if tree != reviewed:
        raise TreeMismatch(f"GitHub built tree {tree}, not the reviewed {reviewed}")
    commit = await database.create_commit(message, tree, [parent or change.base_sha])
    if commit.tree != reviewed:
        raise TreeMismatch(f"GitHub's commit {commit.sha} has tree {commit.tree}, not {reviewed}")
    return commit


async def move_branch(database: GitDatabase, branch: str, sha: str, *, new_branch: bool) -> None:
    """`branch` created at `sha`, or moved there by a fast-forward; BranchMoved when GitHub
    refuses (it exists already, or moved on)."""
    try:
        if new_branch:
            await database.create_branch(branch, sha)
        else:
            await database.move_branch(branch, sha)
    except RefRefused as exc:
        raise BranchMoved(f"GitHub refused to move `{branch}`: {exc}") from None
