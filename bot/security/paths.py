"""Which of a change's paths are protected, decided on normalised paths (pure).

Paths arrive raw (from `git diff-tree -z`, never from quoted text output), so a quote or a
newline in a name is just a character. Before matching, a path is normalised the way the
places that act on it might read it: Unicode compatibility form, case folded (a checkout on a
case-insensitive disk, a tool matching loosely), format characters such as zero-width joiners
dropped, and backslashes read as separators. A protected area is also protected against a
change of one of its ancestors: a symlink or file named `.github/workflows` touches them all.
"""

from __future__ import annotations

import fnmatch
import unicodedata
from collections.abc import Iterable
from typing import Protocol

WORKFLOWS = ".github/workflows/"
_GLOB = "*?["


class ProtectionRules(Protocol):
    """What RepoConfig offers: its protected patterns and a maintainer's opt-ins."""

    protected_paths: list[str]
    allow_paths: list[str]


def normalise(path: str) -> str:
    """The form a protected path is matched in."""
    text = unicodedata.normalize("NFKC", path.replace("\\", "/"))
    text = "".join(char for char in text if unicodedata.category(char) != "Cf")
    parts = [part.strip() for part in text.casefold().split("/")]
    return "/".join(part for part in parts if part not in ("", "."))


def _literal_prefix(pattern: str) -> str:
    """The folders of a pattern before its first wildcard (`db/migrations/**`: `db/migrations`)."""
    cut = min((pattern.find(char) for char in _GLOB if char in pattern), default=len(pattern))
    return normalise(pattern[:cut].rsplit("/", 1)[0] if cut < len(pattern) else pattern)


def _matches(plain: str, pattern: str) -> bool:
    """fnmatch (`*` crosses folders), on normalised forms; `**/x` also matches `x` at the top;
    a folder (`plain/`) matches what a pattern protects beneath it."""
    folded = normalise(pattern) + ("/" if pattern.endswith("/") else "")
    candidates = (folded, folded[3:]) if folded.startswith("**/") else (folded,)
    return any(
        fnmatch.fnmatchcase(plain, candidate) or fnmatch.fnmatchcase(plain + "/", candidate)
        for candidate in candidates
    )


def is_protected(path: str, rules: ProtectionRules) -> bool:
    """Whether a change at `path` may reach a protected file (itself, or beneath it)."""
    plain = normalise(path)
    if (plain + "/").startswith(WORKFLOWS) or WORKFLOWS.startswith(plain + "/"):
        # CI definitions, and `.github` itself (a symlink there carries them along), whatever
        # the repository's config says: the App never asks for the `workflows` permission.
        return True
    if any(_matches(plain, pattern) for pattern in rules.allow_paths):
        return False
    if any(_matches(plain, pattern) for pattern in rules.protected_paths):
        return True
    prefixes = (_literal_prefix(pattern) for pattern in rules.protected_paths)
    return any(prefix and (prefix + "/").startswith(plain + "/") for prefix in prefixes)


def protected_among(paths: Iterable[str], rules: ProtectionRules) -> list[str]:
    """The protected ones of `paths`, in their order, each once."""
    found: list[str] = []
    for path in paths:
        if path not in found and is_protected(path, rules):
            found.append(path)
    return found
