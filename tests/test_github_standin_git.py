"""The GitHub stand-in's Git database routes, through githubkit: real objects in the bare
repository, GitHub's refusals (422 for a bad mode, type, sha or path; "Update is not a fast
forward"; 404 for an object it lacks; the permissions), and commit verification."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest
from githubkit import GitHub
from githubkit.exception import RequestFailed

from bot.config import Settings
from bot.github.client import HANDLER, PUSH, GitHubApp
from standins.github import GitHubStandIn

REPO = "octo/widgets"
OWNER, NAME = REPO.split("/")


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(tmp_path / "gh") as standin:
        standin.create_repo(REPO, {"calc.py": "x = 1\n", "docs/a.md": "a\n"})
        yield standin


async def _client(gh: GitHubStandIn, permissions: dict[str, str]) -> GitHub[Any]:
    app = gh.create_app()
    installation = gh.install(app, "octo", [REPO], {**PUSH, "workflows": "write"})
    settings = Settings.load(app_id=app.id, private_key=app.private_key_pem, github_api_url=gh.url)
    return await GitHubApp(settings).installation_client(
        installation.id, repository=REPO, permissions=permissions
    )


async def _refusal(call: Awaitable[Any]) -> tuple[int, str]:
    try:
        await call
    except RequestFailed as exc:
        return exc.response.status_code, str(exc.response.raw_response.json().get("message"))
    raise AssertionError("GitHub would have refused this")


def _git(gh: GitHubStandIn, *args: str) -> str:
    path = gh.state.repos[REPO].path
    return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True).stdout.strip()


@pytest.mark.anyio
async def test_trees_are_real_objects_and_bad_entries_are_refused(gh: GitHubStandIn) -> None:
    github = await _client(gh, dict(PUSH))
    git = github.rest.git
    base_tree = _git(gh, "rev-parse", "main^{tree}")
    blob = (await git.async_create_blob(OWNER, NAME, content="AAH/", encoding="base64")).json()
    assert _git(gh, "cat-file", "-t", blob["sha"]) == "blob"
    good = {"path": "bin/x", "mode": "100755", "type": "blob", "sha": blob["sha"]}
    tree = await git.async_create_tree(
        OWNER,
        NAME,
        base_tree=base_tree,
        tree=[good, {"path": "docs", "mode": "040000", "type": "tree", "sha": None}],
    )
    assert tree.status_code == 201 and _git(gh, "cat-file", "-t", tree.parsed_data.sha) == "tree"
    assert _git(gh, "ls-tree", "-r", "--name-only", tree.json()["sha"]).split() == [
        "bin/x",
        "calc.py",
    ]
    docs = _git(gh, "rev-parse", "main:docs")
    grafted = await git.async_create_tree(
        OWNER,
        NAME,
        base_tree=base_tree,
        tree=[
            {"path": "more/docs", "mode": "040000", "type": "tree", "sha": docs},
            {**good, "path": "calc.py/inner", "mode": "100644"},  # a file becomes a folder
        ],
    )
    names = _git(gh, "ls-tree", "-r", "--name-only", grafted.json()["sha"]).split()
    assert names == ["calc.py/inner", "docs/a.md", "more/docs/a.md"]
    for bad, said in [
        ({**good, "mode": "100600"}, '"100600" is not a member of'),  # the schema's enum
        ({**good, "type": "tree"}, "does not fit mode"),
        ({**good, "sha": "f" * 40}, "is not a valid blob"),
        ({**good, "path": "a/../b"}, "malformed path"),
        ({**good, "path": ".git/config"}, "malformed path"),
        ({**good, "content": "x"}, "not both"),
    ]:
        # Raw requests: githubkit would refuse some of these bodies before sending them.
        raw = github.arequest(
            "POST", f"/repos/{REPO}/git/trees", json={"base_tree": base_tree, "tree": [bad]}
        )
        status, message = await _refusal(raw)
        assert status == 422 and said in message, bad
    status, message = await _refusal(
        git.async_create_tree(OWNER, NAME, base_tree="e" * 40, tree=[good])
    )
    assert (status, message) == (422, "base_tree is not a valid tree oid")
    for kind in ("blobs", "trees", "commits"):
        missing = getattr(git, f"async_get_{kind[:-1]}")(OWNER, NAME, "d" * 40)
        assert (await _refusal(missing))[0] == 404
    read = (await git.async_get_blob(OWNER, NAME, blob["sha"])).parsed_data
    assert base64.b64decode(read.content) == b"\x00\x01\xff" and read.size == 3


@pytest.mark.anyio
async def test_commits_an_app_makes_are_verified_and_others_are_not(gh: GitHubStandIn) -> None:
    github = await _client(gh, dict(PUSH))
    git = github.rest.git
    base = _git(gh, "rev-parse", "main")
    tree = _git(gh, "rev-parse", "main^{tree}")
    made = await git.async_create_commit(OWNER, NAME, message="m", tree=tree, parents=[base])
    assert made.status_code == 201
    signed = made.parsed_data
    assert signed.verification is not None and signed.verification.verified
    assert signed.verification.reason == "valid" and signed.author.name == "shipmate[bot]"
    assert "gpgsig " in _git(gh, "cat-file", "commit", signed.sha)
    rest = (await github.rest.repos.async_get_commit(OWNER, NAME, signed.sha)).parsed_data
    assert rest.commit.verification is not None and rest.commit.verification.verified
    assert rest.author is not None and rest.author.login == "shipmate[bot]"  # type: ignore[union-attr]
    person = {"name": "Someone", "email": "s@example.com", "date": "2024-01-02T03:04:05Z"}
    other = (
        await git.async_create_commit(
            OWNER, NAME, message="m", tree=tree, parents=[base], committer=person
        )
    ).parsed_data
    assert other.verification is not None and other.verification.reason == "unsigned"
    assert other.committer.date.year == 2024  # type: ignore[union-attr]
    pushed = (await github.rest.repos.async_get_commit(OWNER, NAME, "main")).parsed_data
    assert pushed.commit.verification is not None
    assert pushed.commit.verification.reason == "unsigned"  # pushed over git, never signed
    for fields, said in [
        ({"tree": "e" * 40, "parents": [base]}, "Tree SHA does not exist"),
        ({"tree": tree, "parents": ["e" * 40]}, "Parent SHA does not exist"),
    ]:
        refused = git.async_create_commit(OWNER, NAME, message="m", **fields)  # type: ignore[call-overload]
        status, message = await _refusal(refused)
        assert status == 422 and said in message


@pytest.mark.anyio
async def test_refs_move_only_forward_and_never_to_a_workflow_change(gh: GitHubStandIn) -> None:
    github = await _client(gh, dict(PUSH))
    git = github.rest.git
    base = _git(gh, "rev-parse", "main")
    tree = _git(gh, "rev-parse", "main^{tree}")
    ahead = (
        await git.async_create_commit(OWNER, NAME, message="a", tree=tree, parents=[base])
    ).json()
    aside = (
        await git.async_create_commit(OWNER, NAME, message="b", tree=tree, parents=[base])
    ).json()
    created = await git.async_create_ref(OWNER, NAME, ref="refs/heads/shipmate/x", sha=base)
    assert created.status_code == 201 and created.parsed_data.object_.sha == base
    assert await _refusal(
        git.async_create_ref(OWNER, NAME, ref="refs/heads/shipmate/x", sha=base)
    ) == (422, "Reference already exists")
    assert (await _refusal(git.async_create_ref(OWNER, NAME, ref="heads/y", sha=base)))[0] == 422
    moved = await git.async_update_ref(
        OWNER, NAME, "heads/shipmate/x", sha=ahead["sha"], force=False
    )
    assert moved.parsed_data.object_.sha == ahead["sha"] == gh.branch_sha(REPO, "shipmate/x")
    assert await _refusal(
        git.async_update_ref(OWNER, NAME, "heads/shipmate/x", sha=aside["sha"], force=False)
    ) == (422, "Update is not a fast forward")
    assert gh.branch_sha(REPO, "shipmate/x") == ahead["sha"]
    await git.async_update_ref(OWNER, NAME, "heads/shipmate/x", sha=aside["sha"], force=True)
    assert gh.branch_sha(REPO, "shipmate/x") == aside["sha"]
    assert await _refusal(
        git.async_update_ref(OWNER, NAME, "heads/nope", sha=base, force=False)
    ) == (422, "Reference does not exist")
    assert [p["new"] for p in gh.state.pushes] == [base, ahead["sha"], aside["sha"]]
    workflow = await git.async_create_tree(
        OWNER,
        NAME,
        base_tree=tree,
        tree=[
            {
                "path": ".github/workflows/ci.yml",
                "mode": "100644",
                "type": "blob",
                "content": "on: push\n",
            }
        ],
    )
    ci = (
        await git.async_create_commit(
            OWNER, NAME, message="ci", tree=workflow.json()["sha"], parents=[base]
        )
    ).json()
    status, message = await _refusal(
        git.async_create_ref(OWNER, NAME, ref="refs/heads/ci", sha=ci["sha"])
    )
    assert status == 422 and "without `workflows` permission" in message
    assert gh.branch_sha(REPO, "ci") is None


@pytest.mark.anyio
async def test_reading_needs_contents_read_and_writing_contents_write(gh: GitHubStandIn) -> None:
    reading = await _client(gh, dict(HANDLER))
    reader = reading.rest.git
    blob = _git(gh, "rev-parse", "main:calc.py")
    assert (await reader.async_get_blob(OWNER, NAME, blob)).status_code == 200
    status, message = await _refusal(reader.async_create_blob(OWNER, NAME, content="x"))
    assert (status, message) == (403, "Resource not accessible by integration")
    nothing = await _client(gh, {"metadata": "read"})
    assert (await _refusal(nothing.rest.git.async_get_blob(OWNER, NAME, blob)))[0] == 403
