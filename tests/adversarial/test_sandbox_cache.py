"""The dependency cache under attack (issue 13, attacks 9 and 2): what an agent's commands wrote
to ~/.cache was there for the next task of the same repository, and a setuid shell planted there
ran as host root. The cache is written by `setup:` alone, as the sandbox uid, then sealed."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from bot.sandbox import open_sandbox
from bot.sandbox.base import SandboxSpec
from bot.sandbox.identity import current
from bot.sandbox.setup import DependencyCache, run_setup

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
    pytest.mark.anyio,
]

POISON = (
    "echo evil > ~/.cache/planted; echo evil > ~/.cache/pkg/module.py; rm -f ~/.cache/pkg/keep;"
    " cp /bin/sh ~/.cache/sh; chmod 4755 ~/.cache/sh; echo done"
)


def _snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {
        str(path.relative_to(folder)): (
            path.lstat().st_mode,
            path.lstat().st_uid,
            path.read_bytes(),
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


async def _task(deps: DependencyCache, tree: Path, setup: list[str]) -> tuple[bytes, bytes]:
    """One task of the repository: its setup (when the cache is not filled yet), then the
    agent's command trying to poison the cache, then what it sees there."""
    mount = deps.mount("octo-widgets", tree)
    layered, writable = mount.binds()
    spec = SandboxSpec(workspace=tree, overlay_lower=tree, layered_binds=layered, rw_binds=writable)
    async with open_sandbox(spec) as sandbox:
        if mount.writable:
            results = await run_setup(sandbox, setup)
            assert [r.exit_code for r in results] == [0] * len(setup), results
            mount.complete()
        agent = await sandbox.exec(["sh", "-c", POISON])
        seen = await sandbox.exec(["sh", "-c", "cat ~/.cache/planted ~/.cache/pkg/module.py"])
    # The agent's tools see a writable cache (pip turns a read-only one off)...
    assert agent.stdout == b"done\n", agent.stderr
    assert seen.stdout == b"evil\nevil\n"
    return agent.stderr, seen.stdout


async def test_the_agent_cannot_poison_the_cache_for_the_next_task(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "requirements.txt").write_text("six\n")
    deps = DependencyCache(tmp_path / "deps")
    setup = ["mkdir -p ~/.cache/pkg && echo 'VALUE = 1' > ~/.cache/pkg/module.py"]
    setup += ["touch ~/.cache/pkg/keep; cp /bin/sh ~/.cache/tool; chmod 4755 ~/.cache/tool || true"]
    await _task(deps, tree, setup)
    cache = deps.mount("octo-widgets", tree).path
    filled = _snapshot(cache)
    # ...but the cache holds what setup wrote, and nothing the agent did.
    assert sorted(filled) == ["pkg/keep", "pkg/module.py", "tool"]
    assert filled["pkg/module.py"][2] == b"VALUE = 1\n"
    user = current()
    for mode, owner, _ in filled.values():
        assert mode & (stat.S_ISUID | stat.S_ISGID) == 0  # not even setup plants a setuid file
        assert owner == user.uid and (owner != 0 or os.geteuid() != 0)
    # The second task of the same repository starts from the sealed cache, unchanged after it.
    second = deps.mount("octo-widgets", tree)
    assert not second.writable
    async with open_sandbox(
        SandboxSpec(workspace=tree, overlay_lower=tree, layered_binds=second.binds()[0])
    ) as sandbox:
        seen = await sandbox.exec(["sh", "-c", "ls -A ~/.cache; cat ~/.cache/pkg/module.py"])
    assert seen.stdout == b"pkg\ntool\nVALUE = 1\n"
    await _task(deps, tree, setup)
    assert _snapshot(cache) == filled


async def test_a_cache_filled_before_the_seal_is_filled_afresh(tmp_path: Path) -> None:
    """Caches marked filled before setup alone could write them may hold what an agent (as host
    root) left there: they are not used."""
    tree = tmp_path / "tree"
    tree.mkdir()
    deps = DependencyCache(tmp_path / "deps")
    old = deps.mount("octo-widgets", tree).path
    (old / "planted").write_text("from an older task's agent")
    (old.parent / f"{old.name}.done").touch()
    again = deps.mount("octo-widgets", tree)
    assert again.writable and list(again.path.iterdir()) == []
