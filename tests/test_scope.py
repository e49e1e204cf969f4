"""The scope budget (issue 20 item 1): counting a change's files and lines, generated files apart,
binary files and renames; what the sticky says of a change held back; and a held change rebuilt
from its stored patch as exactly the tree that was reviewed."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.config import RepoConfig
from bot.db.held import HeldChange
from bot.runs import execution
from bot.runs.change import Change, ReviewError, changed_entries, describe, patch_bytes
from bot.runs.execution import Execution, judge
from bot.runs.held import held_execution, held_for, hold
from bot.runs.render import Progress, sticky_comment
from bot.runs.review import measure_scope, rebuild_change, review
from bot.runs.scope import (
    LINE_BYTES,
    FileSize,
    Scope,
    ScopeBudget,
    held_text,
    is_generated,
    measure,
)
from bot.runs.scope import parse_numstat as numstat
from bot.sandbox.checkout import Checkout
from tests.fakes import store_at

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
    moved = FileSize("pkg/moved.py", 1, 1, renamed_from="moved.py", counted=2)
    assert counted["pkg/moved.py"] == moved
    # 272 bytes counted as text would be: four "lines" (three newlines), one of 245 bytes
    assert counted["logo.png"] == FileSize("logo.png", 0, 0, binary=True, counted=5)
    assert counted["old.txt"] == FileSize("old.txt", 0, 3, counted=3)
    assert counted["run.sh"] == FileSize("run.sh", 0, 0, counted=0)  # a mode change: a file
    assert counted["link"] == FileSize("link", 1, 0, counted=1)
    assert counted["latin1.txt"] == FileSize("latin1.txt", 1, 0, counted=1)
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
    assert (scope.files, scope.lines) == (6, 12)


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


# Review findings: what a hostile change could dress up to pass the budget uncounted.


@pytest.mark.parametrize(
    "path", ["app/__snapshots__/main.py", "__snapshots__/run.sh", "src/__snapshots__/x.js"]
)
def test_source_in_a_snapshot_folder_is_counted(path: str) -> None:
    assert not is_generated(path)


def test_a_file_renamed_to_a_generated_name_is_counted() -> None:
    moved = FileSize("src/package-lock.json", 10, 290, renamed_from="src/app.py")
    scope = measure([moved, FileSize("yarn.lock", 5, 5, renamed_from="old/yarn.lock")])
    assert [size.path for size in scope.counted] == ["src/package-lock.json"]
    assert [size.path for size in scope.generated] == ["yarn.lock"]
    assert scope.lines == 300


@pytest.fixture
def disguised(tmp_path: Path) -> Change:
    """Code that git's line count misses: a script with a NUL byte (git says binary, bash runs
    it), an 800 kB program on one line, and a minified file rewritten whole."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, {"vendor/lib.min.js": b"var a=1;" * 5000 + b"\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    write(
        repo,
        {
            "run.sh": b"#!/bin/bash\n# \0\n" + b"".join(b"echo %d\n" % n for n in range(500)),
            "long.js": b"var x=1;" * 100_000 + b"\n",
            "vendor/lib.min.js": b"var b=2;" * 5000 + b"\n",
        },
    )
    git(repo, "add", "-A")
    return Change(repo / ".git", base, git(repo, "write-tree"))


def test_binary_content_and_long_lines_count_by_their_size(disguised: Change) -> None:
    scope = measure_scope(disguised)
    counted = {size.path: size for size in scope.counted}
    script, one_line, rewritten = (
        counted["run.sh"],
        counted["long.js"],
        counted["vendor/lib.min.js"],
    )
    assert script.binary and script.lines >= 4_000 // LINE_BYTES
    assert (one_line.added, one_line.removed) == (1, 0) and one_line.lines == 800_000 // LINE_BYTES
    assert rewritten.lines == 2 * 40_000 // LINE_BYTES
    assert scope.over(ScopeBudget(10, 400)) is not None
    text = held_text(scope, ScopeBudget(10, 400), scope.over(ScopeBudget(10, 400)) or "")
    assert f"- `long.js`: +1 −0, counted as {one_line.lines} lines (long lines)" in text
    assert f"- `run.sh`: binary, counted as {script.lines} lines" in text


def test_a_type_change_is_one_file_of_the_patch(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, {"f": b"hi\n", "g": b"x\n", "bin": b"\0" * 500})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    for name in ("f", "bin"):
        (repo / name).unlink()
        (repo / name).symlink_to("g")
    git(repo, "add", "-A")
    scope = measure_scope(Change(repo / ".git", base, git(repo, "write-tree")))
    assert {size.path: size.lines for size in scope.counted} == {"bin": 3 + 1, "f": 2}


def test_the_held_sticky_stays_within_what_github_takes() -> None:
    """GitHub refuses a comment over 65,536 characters: a held change's comment (a long list
    of long names, a diff at its own limit) must fit, or the hold is never recorded."""
    long = "d/" * 2000 + "x.py"
    scope = Scope(
        tuple(FileSize(f"{long}{n}", 1, 0, renamed_from=f"{long}{n}.old") for n in range(60)),
        tuple(FileSize(f"{long}{n}.snap", 1, 0) for n in range(60)),
    )
    text = held_text(scope, ScopeBudget(10, 400), "60 files (at most 10)")
    assert len(text) < 40_000 and "… and 10 more" in text
    assert "`d/d/d/" in text and "…" in text.split("\n")[4]
    body = sticky_comment(
        Progress(
            key="k",
            verb="fix",
            stage="held",
            reason=text,
            plan="p" * 5000,
            diff="+x\n" * 40_000,
            tests_passed=True,
            test_summary="t" * 1500,
        )
    )
    assert len(body) <= 65_536 and body.startswith("<!-- shipmate:task:k -->")
    assert "_The diff is cut at" in body and body.rstrip().endswith("</details>")


def test_a_change_that_cannot_be_measured_is_not_published(
    change: Change, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(_: Change) -> Scope:
        raise ReviewError("the change could not be measured: the patch has 2 files, numstat 3")

    monkeypatch.setattr(execution, "measure_scope", fails)
    done = Execution(status="completed", change=change, patch="diff")
    judge(done, RepoConfig())
    assert (done.status, done.change, done.patch) == ("failed", None, "")
    assert "could not be measured" in done.reason and done.over_scope is None


def test_a_published_held_change_shows_its_plan_as_the_run_cleaned_it(change: Change) -> None:
    """`apply --large` knows none of the run's secrets: what it shows again of the run (the plan
    too, which the runs table keeps raw) must be what the run's own redaction let out."""
    change.changed = changed_entries(change.git_dir, change.base_sha, change.tree)
    describe(change)
    stored: dict[str, Any] = {}
    store = SimpleNamespace(held=SimpleNamespace(hold=lambda *a, **kw: stored.update(kw)))
    done = Execution(status="completed", plan="1. Use s3cr3t.", summary="Did it.", change=change)
    done.scope, done.scope_budget = measure_scope(change), ScopeBudget(1, 400)
    asyncio.run(
        hold(store, "abc123", ("o/r", 1), done, {"key": "k", "verb": "fix"}, cleaned)  # type: ignore[arg-type]
    )
    held = HeldChange(
        "abc123", "o/r", 1, change.base_sha, change.tree, stored["patch"], stored["detail"]
    )
    checkout = Checkout("unused", change.base_sha, change.git_dir.parent, change.git_dir)
    again = held_execution(held, {"plan": "1. Use s3cr3t."}, checkout, RepoConfig())
    try:
        assert again.plan == "1. Use [REDACTED]." and again.summary == "Did it."
    finally:
        again.discard()


def cleaned(text: str) -> str:
    return text.replace("s3cr3t", "[REDACTED]")


def test_a_secret_in_a_binary_file_is_held_back(tmp_path: Path) -> None:
    """The secret scan reads a diff's added lines; a binary file's patch has none (base85), so
    one NUL byte hid a token from it. A held change is reviewed again before `apply --large`
    publishes it, by the same review."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, {"a.txt": b"a\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    token = b"ghp_" + b"A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    write(repo, {"data.bin": b"\0\x01 token=" + token + b"\n", "logo.png": bytes(range(256))})
    git(repo, "add", "-A")
    change = Change(repo / ".git", base, git(repo, "write-tree"))
    change.changed = changed_entries(change.git_dir, base, change.tree)
    describe(change)
    assert "GIT binary patch" in change.patch
    held = review(change, RepoConfig())
    assert held is not None
    assert held.reason == "the change contains what looks like a secret: data.bin (github-token)"
    assert token.decode() not in held.reason


def test_only_the_thread_that_held_a_change_can_publish_it_and_only_once(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.held.hold(
        "abc123", repo="o/r", number=1, base_sha="a" * 40, tree="b" * 40, patch=b"p", detail={}
    )
    assert held_for(store, "abc123", "o/r", 2) == "Nothing is held back here to publish."
    assert held_for(store, "abc123", "o/other", 1) == "Nothing is held back here to publish."
    assert held_for(store, "fff000", "o/r", 1) == "Nothing is held back here to publish."
    held = held_for(store, "abc123", "o/r", 1)
    assert isinstance(held, HeldChange) and held.patch == b"p"
    assert store.held.mark_published("abc123", "alice")
    assert held_for(store, "abc123", "o/r", 1) == "That change was published already."
