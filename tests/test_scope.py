"""The scope budget (issue 20 item 1): counting a change's files and lines, generated files apart,
binary files and renames; what the sticky says of a change held back; and a held change rebuilt
from its stored patch as exactly the tree that was reviewed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bot.runs.change import Change, ReviewError, patch_bytes
from bot.runs.review import measure_scope, rebuild_change
from bot.runs.scope import FileSize, Scope, ScopeBudget, held_text, is_generated, measure
from bot.runs.scope import parse_numstat as numstat
from bot.sandbox.checkout import Checkout

MOVED = "".join(f"line {n}\n" for n in range(20))


def git(repo: Path, *args: str, data: bytes | None = None) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        input=data,
        env=env,
        capture_output=True,
        check=True,
    )
    return done.stdout.decode().strip()


def write(repo: Path, files: dict[str, bytes]) -> None:
    for path, content in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


@pytest.fixture
def change(tmp_path: Path) -> Change:
    """A base commit and, on top of it, a tree with a rename (and an edit), a binary file, a
    deletion, a mode change, a symlink, a lock file and snapshots."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, {"moved.py": MOVED.encode(), "old.txt": b"a\nb\nc\n", "run.sh": b"echo\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    (repo / "pkg").mkdir()
    git(repo, "mv", "moved.py", "pkg/moved.py")
    write(
        repo,
        {
            "pkg/moved.py": MOVED.replace("line 3\n", "line three\n").encode(),
            "logo.png": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)),
            "package-lock.json": b"{\n" + b'  "x": 1,\n' * 300 + b"}\n",
            "web/__snapshots__/app.test.js.snap": b"exports[`a`] = `b`;\n" * 50,
            "ui.snap": b"snap\n" * 10,
            "latin1.txt": "caf\u00e9\n".encode("latin-1"),
        },
    )
    (repo / "old.txt").unlink()
    (repo / "run.sh").chmod(0o755)
    (repo / "link").symlink_to("pkg/moved.py")
    git(repo, "add", "-A")
    tree = git(repo, "write-tree")
    return Change(repo / ".git", base, tree)


def test_numstat_lines_binary_files_and_renames() -> None:
    raw = b"3\t1\tsrc/a.py\x00-\t-\tlogo.png\x000\t0\t\x00old/b.py\x00new/b.py\x00"
    assert numstat(raw) == [
        FileSize("src/a.py", 3, 1),
        FileSize("logo.png", 0, 0, binary=True),
        FileSize("new/b.py", 0, 0, renamed_from="old/b.py"),
    ]
    assert numstat(b"") == []


@pytest.mark.parametrize(
    "path",
    [
        "package-lock.json",
        "web/yarn.lock",
        "pnpm-lock.yaml",
        "poetry.lock",
        "crates/x/Cargo.lock",
        "go.sum",
        "Gemfile.lock",
        "composer.lock",
        "uv.lock",
        "src/__snapshots__/view.test.ts.snap",
        "tests/__snapshots__/test_api.ambr",
        "ui.snap",
    ],
)
def test_lock_files_and_snapshots_are_generated(path: str) -> None:
    assert is_generated(path)


@pytest.mark.parametrize(
    "path", ["src/lock.py", "go.mod", "package.json", "snap/app.py", "a.snapx"]
)
def test_other_files_are_not(path: str) -> None:
    assert not is_generated(path)


def test_generated_files_are_listed_apart_and_not_counted() -> None:
    scope = measure(
        [
            FileSize("b.py", 300, 0),
            FileSize("yarn.lock", 5000, 4000),
            FileSize("a.py", 50, 60),
            FileSize("__snapshots__/x.snap", 900, 0),
        ]
    )
    assert [size.path for size in scope.counted] == ["a.py", "b.py"]
    assert [size.path for size in scope.generated] == ["__snapshots__/x.snap", "yarn.lock"]
    assert (scope.files, scope.lines) == (2, 410)
    assert scope.over(ScopeBudget(10, 410)) is None
    assert scope.over(ScopeBudget(10, 409)) == "410 changed lines (at most 409)"
    assert scope.over(ScopeBudget(1, 400)) == (
        "2 files (at most 1) and 410 changed lines (at most 400)"
    )


def test_a_real_change_is_measured_by_git(change: Change) -> None:
    scope = measure_scope(change)
    counted = {size.path: size for size in scope.counted}
    assert counted["pkg/moved.py"] == FileSize("pkg/moved.py", 1, 1, renamed_from="moved.py")
    assert counted["logo.png"] == FileSize("logo.png", 0, 0, binary=True)
    assert counted["old.txt"] == FileSize("old.txt", 0, 3)
    assert counted["run.sh"] == FileSize("run.sh", 0, 0)  # a mode change is a changed file
    assert counted["link"] == FileSize("link", 1, 0)
    assert counted["latin1.txt"] == FileSize("latin1.txt", 1, 0)
    assert sorted(counted) == [
        "latin1.txt",
        "link",
        "logo.png",
        "old.txt",
        "pkg/moved.py",
        "run.sh",
    ]
    assert [size.path for size in scope.generated] == [
        "package-lock.json",
        "ui.snap",
        "web/__snapshots__/app.test.js.snap",
    ]
    assert (scope.files, scope.lines) == (6, 7)


def test_the_held_text_lists_files_sizes_budget_and_the_way_on() -> None:
    scope = Scope(
        (
            FileSize("a.py", 12, 3),
            FileSize("logo.png", 0, 0, binary=True),
            FileSize("new.py", 0, 0, renamed_from="old.py"),
            FileSize("we`ird\n.py", 1, 0),
        ),
        (FileSize("yarn.lock", 900, 20),),
    )
    text = held_text(scope, ScopeBudget(3, 400), "4 files (at most 3)")
    assert "scope budget, with 4 files (at most 3). Nothing was pushed." in text
    assert "(4 files, 16 lines; budget 3 files, 400 lines)" in text
    assert "- `a.py`: +12 −3" in text
    assert "- `logo.png`: binary" in text
    assert "- `new.py` (renamed from `old.py`): +0 −0" in text
    assert "- `'we'ird\\n.py'`: +1 −0" in text  # one line, no backtick to break out of
    generated = text.split("**Generated files**")[1]
    assert "- `yarn.lock`: +900 −20" in generated and "a.py" not in generated
    assert "`/shipmate apply --large`" in text and "narrower notes" in text
    assert "`scope: {max_files, max_lines}`" in text


def test_a_long_list_is_cut_with_a_count() -> None:
    scope = Scope(tuple(FileSize(f"f{n:03}.py", 1, 0) for n in range(70)))
    text = held_text(scope, ScopeBudget(10, 400), "70 files (at most 10)")
    assert "`f049.py`" in text and "`f050.py`" not in text and "… and 20 more" in text


def test_a_held_change_rebuilds_exactly_from_its_patch(change: Change) -> None:
    patch = patch_bytes(change)
    checkout = Checkout("unused", change.base_sha, change.git_dir.parent, change.git_dir)
    rebuilt = rebuild_change(checkout, patch, change.tree)
    try:
        assert rebuilt.tree == change.tree and rebuilt.base_sha == change.base_sha
        assert rebuilt.symlinks == {"link": "pkg/moved.py"}
        assert {entry.path for entry in rebuilt.changed} >= {"logo.png", "run.sh", "latin1.txt"}
        assert rebuilt.git_dir != change.git_dir  # a git directory of its own
    finally:
        rebuilt.discard()
    assert not rebuilt.git_dir.exists()


def test_a_patch_that_does_not_rebuild_the_reviewed_tree_is_refused(change: Change) -> None:
    patch = patch_bytes(change)
    assert b"+line three\n" in patch
    checkout = Checkout("unused", change.base_sha, change.git_dir.parent, change.git_dir)
    with pytest.raises(ReviewError, match="not the reviewed"):
        rebuild_change(checkout, patch.replace(b"+line three\n", b"+line 3!!!\n"), change.tree)
    with pytest.raises(ReviewError, match="git apply"):
        rebuild_change(checkout, b"not a patch at all", change.tree)
