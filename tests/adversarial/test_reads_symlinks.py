"""Attack 5 of issue 13: repository files read on the host (prompt context, config, lock
files, the secret scan) are regular files beneath the tree, never a symlink's target."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from bot.runs.local_run import repo_config_text
from bot.sandbox.setup import lock_hash
from bot.security.files import UnsafePath, read_repo_file
from bot.security.tree_scan import scan_tree
from standins.anthropic import MessagesStandIn
from tests.adversarial.review_harness import commit, model, repo, run, script

__all__ = ["model", "repo"]
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
HOST_SECRET = "ghp_" + "H0st" * 9  # looks like a token: the secret scan would report it


@pytest.fixture
def host_file(tmp_path: Path) -> Path:
    """A host file a repository must not reach (the App's credentials, say)."""
    path = tmp_path / "data" / "app-credentials.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pem": HOST_SECRET}))
    return path


@needs_bwrap
def test_symlinked_readme_and_contributing_stay_out_of_the_prompt(
    repo: Path,
    tmp_path: Path,
    model: MessagesStandIn,
    host_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHIPMATE_WEBHOOK_SECRET", "webhook-" + HOST_SECRET)
    (repo / "README.md").symlink_to(host_file)
    (repo / "CONTRIBUTING.md").symlink_to("/proc/self/environ")
    (repo / "README.rst").write_text("Plain docs, read as usual.\n")
    commit(repo, "symlinked docs")
    script(model, "true")
    result = run(repo, tmp_path)
    assert result.status == "completed", result.reason
    system = json.dumps(model.requests[0]["system"])
    assert HOST_SECRET not in system and "test-key" not in system
    assert "Plain docs, read as usual." in system


@needs_bwrap
def test_a_symlinked_config_is_refused_with_a_reason(
    repo: Path, tmp_path: Path, model: MessagesStandIn, host_file: Path
) -> None:
    (repo / ".github").mkdir()
    (repo / ".github" / "shipmate.yml").symlink_to(host_file)
    commit(repo, "symlinked config")
    result = run(repo, tmp_path)
    assert result.status == "failed" and "not a regular file" in result.reason
    assert HOST_SECRET not in result.reason and model.requests == []


def test_no_component_of_the_path_is_followed(tmp_path: Path, host_file: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "real").mkdir(parents=True)
    (tree / "real" / "ok.txt").write_text("fine")
    (tree / "up").symlink_to(host_file.parent)
    (tree / "link.txt").symlink_to(host_file)
    assert read_repo_file(tree, "real/ok.txt") is not None
    assert read_repo_file(tree, "up/app-credentials.json") is None
    assert read_repo_file(tree, "link.txt") is None
    assert read_repo_file(tree, "real") is None
    for bad in ("../data/app-credentials.json", "/etc/passwd", "", "a\0b"):
        with pytest.raises(UnsafePath):
            read_repo_file(tree, bad)


def test_fifos_and_endless_files_never_hang_the_host(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    os.mkfifo(tree / "README.md")
    (tree / "requirements.txt").symlink_to("/dev/zero")
    (tree / "big.txt").write_bytes(b"x" * 5000)
    done = threading.Event()

    def read_all() -> None:
        assert read_repo_file(tree, "README.md") is None
        lock_hash(tree)
        scan_tree(tree)
        done.set()

    worker = threading.Thread(target=read_all, daemon=True)
    started = time.monotonic()
    worker.start()
    assert done.wait(10), "a host-side read blocked on a FIFO or an endless file"
    assert time.monotonic() - started < 10
    capped = read_repo_file(tree, "big.txt", limit=100)
    assert capped is not None and capped.truncated and len(capped.data) == 100


def test_the_secret_scan_and_config_read_only_what_is_in_the_tree(
    tmp_path: Path, host_file: Path
) -> None:
    tree = tmp_path / "tree"
    (tree / ".github").mkdir(parents=True)
    (tree / "leak.txt").symlink_to(host_file)
    (tree / ".github" / "shipmate.yml").write_text("max_steps: 3\n")
    (tree / "real.txt").write_text(f"token = {HOST_SECRET}\n")
    found = scan_tree(tree)
    assert [finding.path for finding in found.findings] == ["real.txt"]
    assert repo_config_text(tree) == "max_steps: 3\n"
    (tree / ".github" / "shipmate.yml").write_bytes(b"x" * (300 * 1024))
    with pytest.raises(Exception, match="larger than"):
        repo_config_text(tree)
