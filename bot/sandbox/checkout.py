"""Clean checkouts per task, fast: a bare mirror per repository, cached on the host and fetched
incrementally; a cached working tree per (repository, commit); and for each task a private
copy-on-write overlay over that tree (mounted inside the sandbox), so a task starts in
milliseconds, changes only its own layer, and leaves the cache untouched.

Nothing from the repository runs on the host: git runs with hooks off and no system or global
config, and the cached trees get their config from us, not from the repository.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "/bin/false",
    "GIT_LFS_SKIP_SMUDGE": "1",
}
SAFE = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "protocol.file.allow=always",
)


class CheckoutError(Exception):
    pass


def git(*args: str, cwd: Path | None = None, token: str | None = None) -> str:
    """Run git on the host with nothing from the repository or the user's config in effect."""
    import subprocess

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.devnull, **GIT_ENV}
    extra: tuple[str, ...] = ()
    if token:
        # Basic auth for this one command only: never written to a config file or a remote URL.
        import base64

        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        extra = ("-c", f"http.extraHeader=Authorization: Basic {basic}")
    result = subprocess.run(
        ["git", *SAFE, *extra, *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        message = result.stderr.strip().replace(token or "\0", "[REDACTED]")
        raise CheckoutError(f"git {args[0]} failed: {message}")
    return result.stdout


@dataclass(frozen=True)
class Checkout:
    """One task's view: the cached tree it overlays, at `sha`."""

    repo_url: str
    sha: str
    tree: Path
    mirror: Path

    @property
    def repo_key(self) -> str:
        """The repository's key in the cache (its mirror is `<key>.git`)."""
        return self.mirror.name.removesuffix(".git")

    @property
    def cache_root(self) -> Path:
        """The CheckoutCache root this checkout came from (mirrors/ and trees/ are in it)."""
        return self.mirror.parent.parent

    @property
    def ro_binds(self) -> dict[Path, str]:
        # The tree's .git borrows objects from the mirror (alternates): the sandbox needs to
        # read them, at the same path, to run git (diff, status, log) inside.
        return {self.mirror: str(self.mirror)}


class CheckoutCache:
    """Mirrors and trees under `root`. Safe for concurrent tasks in one process."""

    keep_trees = 3

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._repo_locks: dict[str, threading.Lock] = {}
        self._in_use: dict[Path, int] = {}

    def release(self, checkout: Checkout) -> None:
        """The task is done with its tree: it may be moved to another commit again."""
        with self._lock:
            self._in_use[checkout.tree] = max(0, self._in_use.get(checkout.tree, 0) - 1)

    def _key(self, repo_url: str) -> str:
        return hashlib.sha256(repo_url.encode()).hexdigest()[:16]

    def mirror(self, repo_url: str, sha: str, token: str | None = None) -> Path:
        """The bare mirror, fetched only when it lacks `sha`."""
        path = self.root / "mirrors" / f"{self._key(repo_url)}.git"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            shutil.rmtree(partial, ignore_errors=True)
            git("clone", "--mirror", "--quiet", repo_url, str(partial), token=token)
            partial.rename(path)
        elif not self._has(path, sha):
            git("fetch", "--prune", "--quiet", "origin", cwd=path, token=token)
        if not self._has(path, sha):
            # A commit no branch points to (a PR head from a fork, say): fetch it by id.
            git("fetch", "--quiet", "origin", sha, cwd=path, token=token)
        if not self._has(path, sha):
            raise CheckoutError(f"{repo_url} has no commit {sha}")
        return path

    @staticmethod
    def _move(tree: Path, sha: str) -> None:
        """Bring `tree` to `sha`. Trees are only ever written by git here (tasks write to their
        overlay), so a two-way merge that rewrites just the files that differ is exact; if the
        index disagrees with the files for any reason, a forced checkout repairs it."""
        try:
            git("read-tree", "-m", "-u", "HEAD", sha, cwd=tree)
            git("update-ref", "--no-deref", "HEAD", sha, cwd=tree)
        except CheckoutError:
            git("checkout", "--quiet", "--force", "--detach", sha, cwd=tree)

    @staticmethod
    def _has(mirror: Path, sha: str) -> bool:
        try:
            git("cat-file", "-e", f"{sha}^{{commit}}", cwd=mirror)
        except CheckoutError:
            return False
        return True

    def tree(self, repo_url: str, sha: str, token: str | None = None) -> Checkout:
        """A cached working tree at `sha`: reused as is, else made by moving the repository's
        newest tree (git rewrites only the files that differ), else checked out afresh."""
        key = self._key(repo_url)
        with self._lock:
            repo_lock = self._repo_locks.setdefault(key, threading.Lock())
        with repo_lock:
            mirror = self.mirror(repo_url, sha, token)
            trees = self.root / "trees" / key
            target = trees / sha
            if not target.exists():
                trees.mkdir(parents=True, exist_ok=True)
                previous = sorted(trees.iterdir(), key=lambda p: p.stat().st_mtime)
                with self._lock:
                    idle = [p for p in previous if not self._in_use.get(p)]
                if idle and len(previous) >= self.keep_trees:
                    source = idle[0]  # the least recently used idle tree becomes the new one
                    source.rename(target)
                else:
                    git("clone", "--quiet", "--shared", "--no-checkout", str(mirror), str(target))
                    git("config", "user.name", "Shipmate", cwd=target)
                    git("config", "user.email", "shipmate@users.noreply.github.com", cwd=target)
                self._move(target, sha)
            os.utime(target)
            with self._lock:
                self._in_use[target] = self._in_use.get(target, 0) + 1
            return Checkout(repo_url, sha, target, mirror)


async def checkout_async(
    cache: CheckoutCache, repo_url: str, sha: str, token: str | None = None
) -> Checkout:
    return await asyncio.to_thread(cache.tree, repo_url, sha, token)


__all__: Sequence[str] = [
    "Checkout",
    "CheckoutCache",
    "CheckoutError",
    "checkout_async",
    "git",
]
