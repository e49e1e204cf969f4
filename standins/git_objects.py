"""Git objects written into and read from the stand-in's bare repositories, as GitHub's Git
database does: blobs by content, trees from a base tree and a list of entries (through a
throw-away index, so git itself checks names and modes), commits written object by object —
signed, when GitHub would sign them, with a `gpgsig` header that stands for GitHub's web-flow key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ZERO = "0" * 40
SHA = re.compile(r"^[0-9a-f]{40}$")
# GitHub's tree modes and the object type each must name.
MODES = {"100644": "blob", "100755": "blob", "120000": "blob", "040000": "tree", "160000": "commit"}
# Stands for GitHub's web-flow GPG key: a commit it signed carries an HMAC of its payload.
WEB_FLOW_KEY = b"standin web-flow key"
BEGIN, END = "-----BEGIN PGP SIGNATURE-----", "-----END PGP SIGNATURE-----"


class GitFailed(Exception):
    """git refused the object (its message is GitHub's answer to the request)."""


def run_git(repo: Path, *args: str, data: bytes | None = None, index: Path | None = None) -> bytes:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_DIR": str(repo),
    }
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    result = subprocess.run(["git", *args], input=data, env=env, capture_output=True, cwd=repo)
    if result.returncode != 0:
        raise GitFailed(result.stderr.decode("utf-8", errors="replace").strip()[:300])
    return result.stdout


def object_type(repo: Path, sha: object) -> str | None:
    """blob, tree, commit or tag for a full sha the repository has; None otherwise."""
    if not isinstance(sha, str) or not SHA.match(sha):
        return None
    try:
        return run_git(repo, "cat-file", "-t", sha).decode().strip()
    except GitFailed:
        return None


def write_blob(repo: Path, content: bytes) -> str:
    return run_git(repo, "hash-object", "-w", "--stdin", data=content).decode().strip()


def read_blob(repo: Path, sha: str) -> bytes:
    return run_git(repo, "cat-file", "blob", sha)


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a tree request, checked: `sha` None deletes the path (a folder whole)."""

    path: str
    mode: str
    sha: str | None


def build_tree(repo: Path, base_tree: str | None, entries: list[TreeEntry]) -> str:
    """The tree `base_tree` with `entries` applied in order, written to the repository."""
    with tempfile.TemporaryDirectory() as scratch:
        index = Path(scratch) / "index"
        if base_tree:
            run_git(repo, "read-tree", base_tree, index=index)
        else:
            run_git(repo, "read-tree", "--empty", index=index)
        listed = run_git(repo, "ls-files", "-z", index=index).decode("utf-8", "surrogateescape")
        present = set(filter(None, listed.split("\0")))
        lines = [line for entry in entries for line in _index_lines(repo, present, entry)]
        if lines:
            data = "".join(lines).encode("utf-8", "surrogateescape")
            run_git(repo, "update-index", "-z", "--add", "--index-info", data=data, index=index)
        return run_git(repo, "write-tree", index=index).decode().strip()


def _index_lines(repo: Path, present: set[str], entry: TreeEntry) -> list[str]:
    """`update-index --index-info` lines for one entry: whatever is at its path (a folder
    whole) goes, then what it names arrives; `present` follows along."""
    inside = [p for p in present if p == entry.path or p.startswith(entry.path + "/")]
    present.difference_update(inside)
    lines = [f"0 {ZERO}\t{path}\0" for path in sorted(inside)]
    if entry.sha is None:
        return lines
    arriving: list[tuple[str, str, str]] = []
    if entry.mode == "040000":
        below = run_git(repo, "ls-tree", "-r", "-z", entry.sha).decode("utf-8", "surrogateescape")
        for line in filter(None, below.split("\0")):
            meta, _, name = line.partition("\t")
            mode, _, sha = meta.split(" ")
            arriving.append((mode, sha, f"{entry.path}/{name}"))
    else:
        arriving.append((entry.mode, entry.sha, entry.path))
    for mode, sha, path in arriving:
        # A file where a folder of the new path was (or the reverse) is replaced, as git does.
        parents = {path.rsplit("/", n)[0] for n in range(1, path.count("/") + 1)}
        present.difference_update(parents & present)
        present.add(path)
        lines.append(f"{mode} {sha}\t{path}\0")
    return lines


def tree_listing(repo: Path, sha: str, recursive: bool) -> list[dict[str, str | int]]:
    """path, mode, type, sha and (for blobs) size of a tree's entries, as git lists them."""
    flags = ["-r", "-t"] if recursive else []
    out = run_git(repo, "ls-tree", "-z", "--long", *flags, sha).decode("utf-8", "surrogateescape")
    entries: list[dict[str, str | int]] = []
    for line in filter(None, out.split("\0")):
        meta, _, path = line.partition("\t")
        mode, kind, object_sha, size = meta.split()
        entry: dict[str, str | int] = {"path": path, "mode": mode, "type": kind, "sha": object_sha}
        if kind == "blob":
            entry["size"] = int(size)
        entries.append(entry)
    return entries


@dataclass
class Person:
    name: str
    email: str
    seconds: int
    offset: str = "+0000"

    def line(self) -> str:
        return f"{self.name} <{self.email}> {self.seconds} {self.offset}"


@dataclass
class Commit:
    """A commit object, parsed or to be written; `signature` is its `gpgsig` header."""

    tree: str
    parents: list[str]
    author: Person
    committer: Person
    message: str
    signature: str | None = None
    headers: list[str] = field(default_factory=list)  # others, kept for the payload

    def payload(self) -> str:
        """The object without its signature: what the signature signs."""
        lines = [f"tree {self.tree}", *(f"parent {p}" for p in self.parents)]
        lines += [f"author {self.author.line()}", f"committer {self.committer.line()}"]
        return "\n".join([*lines, *self.headers]) + "\n\n" + self.message

    def text(self) -> str:
        if self.signature is None:
            return self.payload()
        head, _, message = self.payload().partition("\n\n")
        folded = self.signature.replace("\n", "\n ")
        return f"{head}\ngpgsig {folded}\n\n{message}"


def web_flow_signature(payload: str) -> str:
    digest = hmac.new(WEB_FLOW_KEY, payload.encode(), hashlib.sha256).digest()
    return f"{BEGIN}\n\n{base64.b64encode(digest).decode()}\n{END}"


def verification_reason(commit: Commit) -> str:
    """GitHub's `verification.reason`: unsigned, valid (the web-flow key), unknown_key."""
    if commit.signature is None:
        return "unsigned"
    if hmac.compare_digest(commit.signature, web_flow_signature(commit.payload())):
        return "valid"
    return "unknown_key"


def write_commit(repo: Path, commit: Commit) -> str:
    data = commit.text().encode("utf-8", "surrogateescape")
    return run_git(repo, "hash-object", "-t", "commit", "-w", "--stdin", data=data).decode().strip()


def read_commit(repo: Path, sha: str) -> Commit:
    raw = run_git(repo, "cat-file", "commit", sha).decode("utf-8", "surrogateescape")
    head, _, message = raw.partition("\n\n")
    fields: list[tuple[str, str]] = []
    for line in head.split("\n"):
        if line.startswith(" ") and fields:
            key, value = fields[-1]
            fields[-1] = (key, f"{value}\n{line[1:]}")
        else:
            key, _, value = line.partition(" ")
            fields.append((key, value))
    found = Commit("", [], Person("", "", 0), Person("", "", 0), message)
    for key, value in fields:
        if key == "tree":
            found.tree = value
        elif key == "parent":
            found.parents.append(value)
        elif key in ("author", "committer"):
            setattr(found, key, _person(value))
        elif key == "gpgsig":
            found.signature = value
        else:
            found.headers.append(f"{key} {value}".replace("\n", "\n "))
    return found


def _person(value: str) -> Person:
    name, _, rest = value.partition(" <")
    email, _, when = rest.partition("> ")
    seconds, _, offset = when.partition(" ")
    return Person(name, email, int(seconds or 0), offset or "+0000")
