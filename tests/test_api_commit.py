"""Shipmate's commit through GitHub's Git database API: the tree entries computed from the local
commit, the blobs read from Shipmate's own git, and the whole path against the GitHub stand-in
(binary file, executable, symlink, deletion, a file turned folder; byte for byte; verified)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.github.client import PUSH, GitHubApp, RepoClient, RetryPolicy
from bot.github.git_data import GitDatabase
from bot.runs.api_commit import (
    BranchMoved,
    TreeItem,
    TreeMismatch,
    batches,
    blobs_to_send,
    commit_through_api,
    read_blobs,
    tree_items,
)
from bot.runs.change import Change, Changed, changed_entries
from standins.github import GitHubStandIn

REPO = "octo/widgets"
BINARY = bytes(range(256)) * 3 + b"\x00\r\n\xff"


def _entry(path: str, status: str, old: str, new: str, sha: str = "b" * 40) -> Changed:
    return Changed(path, status, old, new, "0" * 40 if status == "D" else sha)


def test_tree_items_put_deletions_first_and_keep_each_mode() -> None:
    changed = [
        _entry("a", "D", "100644", "000000"),
        _entry("a/inner.txt", "A", "000000", "100644", "1" * 40),
        _entry("link", "A", "000000", "120000", "2" * 40),
        _entry("run.sh", "M", "100644", "100755", "3" * 40),
        _entry("gone-link", "D", "120000", "000000"),
        _entry("vendor/lib", "A", "000000", "160000", "4" * 40),
        _entry("was-file", "T", "100644", "120000", "5" * 40),
    ]
    assert tree_items(changed) == [
        TreeItem("a", "100644", "blob", None),
        TreeItem("gone-link", "120000", "blob", None),
        TreeItem("a/inner.txt", "100644", "blob", "1" * 40),
        TreeItem("link", "120000", "blob", "2" * 40),
        TreeItem("run.sh", "100755", "blob", "3" * 40),
        TreeItem("vendor/lib", "160000", "commit", "4" * 40),
        TreeItem("was-file", "120000", "blob", "5" * 40),
    ]
    assert TreeItem("a", "100644", "blob", None).as_json() == {
        "path": "a",
        "mode": "100644",
        "type": "blob",
        "sha": None,
    }
    # One blob per content; none for deletions or a submodule's commit.
    same = [*changed, _entry("copy.sh", "A", "000000", "100644", "3" * 40)]
    assert blobs_to_send(same) == ["1" * 40, "2" * 40, "3" * 40, "5" * 40]


def test_batches_cut_a_large_tree_request() -> None:
    items = [TreeItem(f"f{n}", "100644", "blob", "a" * 40) for n in range(1201)]
    cut = batches(items, 500)
    assert [len(batch) for batch in cut] == [500, 500, 201]
    assert [item for batch in cut for item in batch] == items
    assert batches([], 500) == []


def _git(git_dir: Path, *args: str, data: bytes | None = None, index: Path | None = None) -> str:
    env = {**os.environ, "GIT_DIR": str(git_dir)}
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    done = subprocess.run(["git", *args], input=data, env=env, capture_output=True, check=True)
    return done.stdout.decode().strip()


def _change(source: Path, work: Path) -> Change:
    """A reviewed change as the review leaves it: a tree on the base commit in a git directory
    of our own (cloned from the stand-in's repository)."""
    git_dir = work / "review" / "git"
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(git_dir)], check=True)
    base = _git(git_dir, "rev-parse", "main")
    index = work / "index"
    _git(git_dir, "read-tree", base, index=index)
    blob = {
        name: _git(git_dir, "hash-object", "-w", "--stdin", data=content)
        for name, content in {
            "binary": BINARY,
            "script": b"#!/bin/sh\necho hi\n",
            "target": b"calc.py",
            "inner": b"now a folder\n",
        }.items()
    }
    lines = [
        f"100644 {blob['binary']}\tassets/logo.bin",
        f"100755 {blob['script']}\tbin/run.sh",
        f"120000 {blob['target']}\tlink-to-calc",
        f"0 {'0' * 40}\tREADME.md",
        f"100644 {blob['inner']}\tnotes/inner.txt",  # `notes` was a file
        f"100644 {blob['binary']}\tassets/copy.bin",  # the same blob twice
    ]
    _git(
        git_dir,
        "update-index",
        "-z",
        "--index-info",
        data="\0".join(lines).encode() + b"\0",
        index=index,
    )
    tree = _git(git_dir, "write-tree", index=index)
    return Change(git_dir, base, tree, changed=changed_entries(git_dir, base, tree))


def test_read_blobs_gives_each_blob_byte_for_byte(tmp_path: Path) -> None:
    source = tmp_path / "source.git"
    subprocess.run(["git", "init", "-q", "--bare", str(source)], check=True)
    sha = _git(source, "hash-object", "-w", "--stdin", data=BINARY)
    empty = _git(source, "hash-object", "-w", "--stdin", data=b"")
    assert read_blobs(source, [sha, empty]) == {sha: BINARY, empty: b""}
    tree = _git(source, "mktree", data=f"100644 blob {sha}\tx\n".encode())
    with pytest.raises(TreeMismatch):
        read_blobs(source, [tree])


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(tmp_path / "gh") as standin:
        standin.create_repo(
            REPO,
            {"calc.py": "def add(a, b):\n    return a + b\n", "README.md": "hi\n", "notes": "x\n"},
        )
        yield standin
    assert standin.refused == []  # the product sent nothing GitHub's description refuses


async def _database(gh: GitHubStandIn, retry: RetryPolicy | None = None) -> GitDatabase:
    app = gh.create_app()
    installation = gh.install(app, "octo", [REPO], dict(PUSH))
    settings = Settings.load(app_id=app.id, private_key=app.private_key_pem, github_api_url=gh.url)
    client = await GitHubApp(settings).installation_client(
        installation.id, repository=REPO, permissions=PUSH
    )
    return GitDatabase(RepoClient(client, REPO, retry or RetryPolicy(max_wait=0.05, base=0.01)))


def _show(repo: Path, spec: str) -> bytes:
    return subprocess.run(["git", "cat-file", "-p", spec], cwd=repo, capture_output=True).stdout


@pytest.mark.anyio
async def test_a_commit_made_through_the_api_is_the_reviewed_tree_and_verified(
    gh: GitHubStandIn, tmp_path: Path
) -> None:
    bare = gh.state.repos[REPO].path
    change = _change(bare, tmp_path)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    # GitHub's secondary limit on content creation, met half-way through the blobs.
    gh.fail("POST /repos/{owner}/{repo}/git/blobs", "secondary_limit", times=1, seconds=7)
    database = await _database(gh, RetryPolicy(sleep=sleep))
    commit = await commit_through_api(
        database,
        change,
        "Add assets\n\nBody.",
        branch="shipmate/1-assets",
        new_branch=True,
        tree_batch=4,  # two trees, the second built on the first
    )
    assert waits == [7.0]  # the retry-after GitHub sent
    assert commit.verified and commit.reason == "valid" and commit.tree == change.tree
    head = gh.branch_sha(REPO, "shipmate/1-assets")
    assert head == commit.sha and _git(bare, "rev-parse", f"{head}^{{tree}}") == change.tree
    assert _git(bare, "rev-parse", f"{head}^") == change.base_sha
    assert _show(bare, f"{head}:assets/logo.bin") == BINARY
    listing = _git(bare, "ls-tree", "-r", head)
    assert "100755 blob" in next(line for line in listing.splitlines() if "bin/run.sh" in line)
    assert "120000 blob" in next(line for line in listing.splitlines() if "link-to-calc" in line)
    assert _show(bare, f"{head}:link-to-calc") == b"calc.py"
    assert "README.md" not in listing and "notes/inner.txt" in listing
    blobs = [r for r in gh.requests if r.path.endswith("/git/blobs") and r.status == 201]
    assert len(blobs) == 4  # logo.bin and copy.bin are one blob
    trees = [r for r in gh.requests if r.path.endswith("/git/trees")]
    assert [len(r.body["tree"]) for r in trees] == [4, 3]
    assert trees[0].body["base_tree"] == _git(bare, "rev-parse", f"{change.base_sha}^{{tree}}")
    between = trees[1].body["base_tree"]  # the first tree GitHub built: README.md gone already
    assert "README.md" not in _git(bare, "ls-tree", "--name-only", between).split()
    assert trees[0].body["tree"][0] == {
        "path": "README.md",
        "mode": "100644",
        "type": "blob",
        "sha": None,
    }
    (push,) = gh.state.pushes
    assert push["pusher"] == "shipmate[bot]" and push["old"] is None and push["new"] == head
    message = _show(bare, head).decode()
    assert "gpgsig -----BEGIN PGP SIGNATURE-----" in message and message.endswith("Body.")


@pytest.mark.anyio
async def test_a_branch_that_moved_is_not_touched(gh: GitHubStandIn, tmp_path: Path) -> None:
    bare = gh.state.repos[REPO].path
    gh.commit(REPO, "shipmate/1-fix", {"calc.py": "first\n"})
    change = _change(bare, tmp_path)
    subprocess.run(
        ["git", "--git-dir", str(change.git_dir), "fetch", "-q", str(bare), "shipmate/1-fix"],
        check=True,
    )
    started = gh.branch_sha(REPO, "shipmate/1-fix")
    assert started is not None
    moved_change = Change(change.git_dir, started, change.tree, changed=[])
    moved_change.changed = changed_entries(change.git_dir, started, change.tree)
    gh.git_database.before_ref_update.append(
        lambda: gh.commit(REPO, "shipmate/1-fix", {"human.txt": "mine\n"}, "a human pushed")
    )
    database = await _database(gh)
    with pytest.raises(BranchMoved, match="not a fast forward"):
        await commit_through_api(
            database, moved_change, "Fix", branch="shipmate/1-fix", new_branch=False
        )
    human = gh.branch_sha(REPO, "shipmate/1-fix")
    assert human != started and _show(bare, f"{human}:human.txt") == b"mine\n"
    assert all(p["pusher"] != "shipmate[bot]" for p in gh.state.pushes)


@pytest.mark.anyio
async def test_a_tree_github_builds_differently_is_never_committed(
    gh: GitHubStandIn, tmp_path: Path
) -> None:
    change = _change(gh.state.repos[REPO].path, tmp_path)
    database = await _database(gh)
    real = database.create_tree

    async def drops_the_last_entry(base_tree: str, entries: Any) -> str:
        return await real(base_tree, list(entries)[:-1])

    database.create_tree = drops_the_last_entry  # type: ignore[method-assign]
    with pytest.raises(TreeMismatch, match="not the reviewed"):
        await commit_through_api(database, change, "x", branch="shipmate/2", new_branch=True)
    assert gh.branch_sha(REPO, "shipmate/2") is None and gh.state.pushes == []
    assert not any(r.path.endswith("/git/commits") for r in gh.requests)
