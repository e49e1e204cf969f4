"""Verified commits (issue 20, item 2): a run's commit is made through GitHub's Git database API,
which signs it — never pushed over git smart HTTP — with a symlink, an executable and a binary
file landing byte for byte; and a branch that moves after the run's last check is refused by
GitHub's fast-forward rule, so nothing is pushed."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from typing import Any

import pytest

from bot.github.client import GitHubApp
from standins.anthropic import Turn
from tests.scripts import edit_add
from tests.test_e2e_github import FIXED_SCRIPT, REPO, World, _failing_workflow, _shipmate_pr
from tests.test_e2e_github import world as world

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]
BINARY = bytes(range(256)) + bytes([0, 13, 10, 255, 254])
MAKE_FILES = (
    "python3 -c \"import pathlib; pathlib.Path('assets').mkdir(); "
    "pathlib.Path('assets/logo.bin').write_bytes(bytes(range(256)) + bytes([0, 13, 10, 255, 254]))\" && "
    "printf '#!/bin/sh\\necho hi\\n' > run.sh && chmod +x run.sh && "
    "ln -s calc.py add.py && echo made"
)


def _git(world: World, *args: str) -> bytes:
    path = world.gh.state.repos[REPO].path
    return subprocess.run(["git", *args], cwd=path, capture_output=True, check=True).stdout


async def _verification(world: World, sha: str) -> Any:
    """The commit as GitHub's REST API answers it, read with the App's own client."""
    github = await GitHubApp(world.settings).installation_client(
        world.installation_id, repository=REPO, permissions={"contents": "read"}
    )
    owner, name = REPO.split("/")
    answer = await github.rest.repos.async_get_commit(owner, name, sha)
    return answer.parsed_data.commit.verification


def test_a_fix_is_committed_through_the_api_verified_and_byte_for_byte(world: World) -> None:
    world.model.script(
        [
            Turn.text("1. Fix add().\n2. Add the assets."),
            edit_add(),
            Turn.tool_use("bash", {"command": MAKE_FILES}),
            Turn.text("Fixed add() and added the assets."),
        ]
    )
    world.comment("/shipmate fix")
    assert world.work() == 2
    gh = world.gh
    (pull,) = gh.state.pulls.values()
    (push,) = gh.state.pushes
    head = push["new"]
    assert push["pusher"] == "shipmate[bot]" and push["old"] is None
    assert push["ref"] == f"refs/heads/{pull['head']['ref']}" and pull["head"]["sha"] == head
    assert not any("receive-pack" in r.path + r.query for r in gh.requests)  # no git push
    assert [r.status for r in gh.requests if r.path.endswith("/git/commits")] == [201]
    verification = asyncio.run(_verification(world, head))
    assert verification is not None and verification.verified and verification.reason == "valid"
    assert b"gpgsig -----BEGIN PGP SIGNATURE-----" in _git(world, "cat-file", "commit", head)
    assert _git(world, "cat-file", "blob", f"{head}:assets/logo.bin") == BINARY
    assert _git(world, "cat-file", "blob", f"{head}:run.sh") == b"#!/bin/sh\necho hi\n"
    assert _git(world, "cat-file", "blob", f"{head}:add.py") == b"calc.py"
    assert _git(world, "cat-file", "blob", f"{head}:calc.py").endswith(b"return a + b\n")
    modes = {
        line.split(b"\t")[1]: line.split(b" ")[0]
        for line in _git(world, "ls-tree", "-r", head).splitlines()
    }
    assert modes[b"run.sh"] == b"100755" and modes[b"add.py"] == b"120000"
    assert modes[b"assets/logo.bin"] == b"100644"
    parent = _git(world, "rev-parse", f"{head}^").strip().decode()
    assert parent == gh.branch_sha(REPO, "main")  # on the commit the run started from
    (check,) = gh.state.check_runs.values()
    assert check["head_sha"] == head and check["conclusion"] == "success"
    (run,) = world.store.runs_for(REPO, 1)
    (pushed,) = [r for r in world.store.audit_for_run(run["id"]) if r["action"] == "git.push"]
    assert pushed["detail"]["sha"] == head and pushed["detail"]["verified"] is True


def test_a_branch_that_moves_before_the_commit_lands_is_left_alone(world: World) -> None:
    pull = _shipmate_pr(world)
    started = pull["head"]["sha"]
    moved: list[str] = []

    def someone_pushes() -> None:
        moved.append(world.gh.commit(REPO, "shipmate/1-add", {"human.txt": "mine\n"}, "human"))

    # After Shipmate's own check that the branch has not moved: just before GitHub judges the
    # ref update, as a human's push racing the run would land.
    world.gh.git_database.before_ref_update.append(someone_pushes)
    world.model.script(list(FIXED_SCRIPT))
    _failing_workflow(world, pull)
    world.work()
    assert moved and world.gh.branch_sha(REPO, "shipmate/1-add") == moved[0] != started
    assert all(p["pusher"] != "shipmate[bot]" for p in world.gh.state.pushes)
    refused = [r for r in world.gh.requests if r.method == "PATCH" and "/git/refs/" in r.path]
    assert [r.status for r in refused] == [422]
    sticky = [
        c["body"]
        for c in world.gh.comments_on(REPO, pull["number"])
        if c["user"]["login"] == "shipmate[bot]"
    ]
    assert "moved while I worked" in sticky[-1] and "pushed nothing" in sticky[-1]
    assert world.gh.errors == []
