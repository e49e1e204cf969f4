"""Shipmate, not the model, commits: the task's diff becomes one commit on a new `shipmate/…`
branch. Done on the host in a throwaway clone, with hooks and the repository's config off;
the user's working tree and current branch are never touched."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bot.config import RepoConfig, slugify
from bot.sandbox.checkout import GIT_ENV, SAFE, CheckoutError, changed_paths, git
from bot.security.scan import scan_diff

AUTHOR = ("-c", "user.name=Shipmate", "-c", "user.email=shipmate@users.noreply.github.com")


@dataclass(frozen=True)
class HeldBack:
    reason: str


def review(patch: str, config: RepoConfig) -> HeldBack | None:
    """Why a patch must not be committed (a secret, a protected path), or None."""
    findings = scan_diff(patch)
    if findings:
        where = ", ".join(sorted({f"{f.path}:{f.line} ({f.rule})" for f in findings}))
        return HeldBack(f"the change contains what looks like a secret: {where}")
    protected = [p for p in changed_paths(patch) if config.is_protected(p)]
    if protected:
        return HeldBack(
            "the change touches protected paths: "
            + ", ".join(protected)
            + " (a maintainer can opt in with allow_paths in .github/shipmate.yml)"
        )
    return None


def free_branch(repo: Path, title: str) -> str:
    base = f"shipmate/{slugify(title)}"
    existing = set(
        git("for-each-ref", "--format=%(refname:short)", "refs/heads/shipmate/", cwd=repo).split()
    )
    name, n = base, 2
    while name in existing:
        name, n = f"{base}-{n}", n + 1
    return name


def commit_patch(
    repo: Path,
    base_sha: str,
    patch: str,
    branch: str,
    message: str,
    *,
    push_to: str | None = None,
    token: str | None = None,
) -> str:
    """Apply `patch` on `base_sha` in a scratch clone of `repo` (a local repository or mirror),
    commit, and push to `branch` of `push_to` (default: `repo`) — a plain push, never a force.
    Returns the new commit's id."""
    with tempfile.TemporaryDirectory(prefix="shipmate-commit-") as tmp:
        work = Path(tmp) / "work"
        git("clone", "--quiet", "--shared", "--no-checkout", str(repo), str(work))
        git("checkout", "--quiet", "--detach", base_sha, cwd=work)
        applied = subprocess.run(
            ["git", *SAFE, "apply", "--index", "--binary", "--whitespace=nowarn", "-"],
            cwd=work,
            input=patch.encode(),
            capture_output=True,
            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **GIT_ENV},
        )
        if applied.returncode != 0:
            raise CheckoutError(
                f"the patch does not apply: {applied.stderr.decode(errors='replace')[:500]}"
            )
        git(*AUTHOR, "commit", "--quiet", "--no-verify", "-m", message, cwd=work)
        sha = git("rev-parse", "HEAD", cwd=work).strip()
        git(
            "push",
            "--quiet",
            push_to or str(repo),
            f"HEAD:refs/heads/{branch}",
            cwd=work,
            token=token,
        )
        return sha


def commit_message(title: str, summary: str) -> str:
    subject = title.strip().splitlines()[0][:72] if title.strip() else "Shipmate change"
    body = summary.strip()[:3000]
    return (
        f"{subject}\n\n{body}\n\nMade by Shipmate in a sandbox; reviewed and merged by a human."
        if body
        else subject
    )
