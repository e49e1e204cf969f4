"""The repository's `setup:` step (install dependencies) and the per-repository dependency cache
it fills: keyed by the hash of the lock files, written by the `setup:` commands of the first
task that needs it (as the sandbox uid), then shown to that task's agent and to every later task
with the same lock files as a layer whose writes are dropped: the cache never changes after
setup filled it, so no task leaves anything in it for the next one."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.sandbox.base import ExecResult, Sandbox
from bot.security.files import read_repo_file

LOCK_FILES = (
    "requirements.txt",
    "requirements-dev.txt",
    "requirements/dev.txt",
    "poetry.lock",
    "uv.lock",
    "Pipfile.lock",
    "pdm.lock",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "Cargo.lock",
    "go.sum",
    "Gemfile.lock",
    "composer.lock",
)
INSIDE_CACHE = "/home/sandbox/.cache"
# The marker of a filled cache. Caches filled before setup alone could write them (".done", when
# the agent's commands could too, as host root) are filled afresh.
FILLED = ".sealed"
# A longer lock file is hashed on its first LOCK_FILE_BYTES (with the rest it is still a key).
LOCK_FILE_BYTES = 64 * 1024 * 1024


def lock_hash(tree: Path) -> str:
    """A hash of the lock files present in `tree` (same files, same hash). A lock file that is
    a symlink counts as absent: the host never reads through one."""
    digest = hashlib.sha256()
    for name in LOCK_FILES:
        found = read_repo_file(tree, name, LOCK_FILE_BYTES)
        if found is not None:
            digest.update(name.encode() + b"\0" + found.data + b"\0")
    return digest.hexdigest()[:20]


@dataclass(frozen=True)
class CacheMount:
    """Where the dependency cache is on the host and whether this task may write it."""

    path: Path
    writable: bool

    def binds(self) -> tuple[dict[Path, str], dict[Path, str]]:
        """(layered binds, read-write binds) for the SandboxSpec. A filled cache is layered:
        tools see it writable (pip turns a read-only cache off), the cache is never changed."""
        if self.writable:
            return {}, {self.path: INSIDE_CACHE}
        return {self.path: INSIDE_CACHE}, {}

    def complete(self) -> None:
        if self.writable:
            (self.path.parent / f"{self.path.name}{FILLED}").touch()


class DependencyCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def mount(self, repo_key: str, tree: Path) -> CacheMount:
        folder = self.root / repo_key
        path = folder / lock_hash(tree)
        if (folder / f"{path.name}{FILLED}").exists():
            return CacheMount(path, writable=False)
        # Not filled yet (or a previous fill failed half-way): start it afresh.
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return CacheMount(path, writable=True)


async def run_setup(
    sandbox: Sandbox, commands: Sequence[str], *, timeout_seconds: float = 900
) -> list[ExecResult]:
    """Run each `setup:` command in the sandbox, stopping at the first failure; then the
    dependency cache is sealed: read-only to every later command (the agent's)."""
    results: list[ExecResult] = []
    try:
        for command in commands:
            result = await sandbox.exec(["bash", "-lc", command], timeout_seconds=timeout_seconds)
            results.append(result)
            if result.exit_code != 0:
                break
    finally:
        await sandbox.seal()
    return results
