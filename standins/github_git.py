"""The GitHub stand-in's Git database routes — blobs, trees, commits and refs, written into its
real bare repositories — and the REST commit with its signature verification.

Requests are judged as GitHub judges them: `contents: read` to read, `write` to write; a tree
entry with a bad mode, a type that does not fit its mode or a sha the repository lacks is a 422;
a ref update that is not a fast-forward, without `force`, is 422 "Update is not a fast forward";
an object the repository does not have is a 404. A commit an App creates without naming its
committer is signed by GitHub (web-flow) — here with the stand-in's key — and every commit
answer carries its `verification`, computed from the object itself.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from standins import git_objects as objects
from standins import github_git_commits as commits
from standins import github_git_refs as refs
from standins.github_common import Call, NotFound, Repo, Token

if TYPE_CHECKING:
    from standins.github import GitHubStandIn

GitDatabase = refs.GitDatabase  # the stand-in holds one: `gh.git_database`


# The route table's handlers (standins/github_routes.py: contents read to read, write to write).


def create_blob(gh: GitHubStandIn, call: Call) -> Response:
    return _create_blob(gh, gh.state.repos[call.repo], call.body)


def create_tree(gh: GitHubStandIn, call: Call) -> Response:
    return _create_tree(gh, gh.state.repos[call.repo], call.body)


def create_commit(gh: GitHubStandIn, call: Call) -> Response:
    return commits.create_commit(gh, gh.state.repos[call.repo], call.body, call.token)


def create_ref(gh: GitHubStandIn, call: Call) -> Response:
    return refs.create_ref(gh, gh.state.repos[call.repo], call.body, call.token)


def update_ref(gh: GitHubStandIn, call: Call) -> Response:
    ref = "refs/" + call.params["ref"]
    return refs.update_ref(gh, gh.state.repos[call.repo], ref, call.body, call.token)


def get_blob(gh: GitHubStandIn, call: Call) -> Response:
    return _read(gh, call.request, gh.state.repos[call.repo], "blobs", call.params["file_sha"])


def get_tree(gh: GitHubStandIn, call: Call) -> Response:
    return _read(gh, call.request, gh.state.repos[call.repo], "trees", call.params["tree_sha"])


def get_commit(gh: GitHubStandIn, call: Call) -> Response:
    sha = call.params["commit_sha"]
    return _read(gh, call.request, gh.state.repos[call.repo], "commits", sha)


def get_rest_commit(gh: GitHubStandIn, call: Call) -> Response:
    return rest_commit(gh, call.repo, call.params["ref"], call.token)


def rest_commit(gh: GitHubStandIn, repo: str, ref: str, token: Token | None) -> Response:
    """GET /repos/{owner}/{repo}/commits/{ref}: the commit, its verification under `commit`."""
    denied = gh._allowed(token, repo, "contents", "read")
    if denied:
        return denied
    sha = gh.resolve(repo, ref)
    if sha is None:
        return gh._error(422, f"No commit found for SHA: {ref}")
    info = gh.state.repos[repo]
    commit = objects.read_commit(info.path, sha)
    api = f"{gh.url}/repos/{repo}"
    shape = commits.commit_json(gh, repo, sha, commit)
    return gh._json(
        {
            "sha": sha,
            "node_id": shape["node_id"],
            "url": f"{api}/commits/{sha}",
            "html_url": shape["html_url"],
            "comments_url": f"{api}/commits/{sha}/comments",
            "commit": {
                key: shape[key]
                for key in ("url", "author", "committer", "message", "tree", "verification")
            }
            | {"comment_count": 0},
            "author": commits.account(gh, commit.author),
            "committer": commits.account(gh, commit.committer),
            "parents": shape["parents"],
        }
    )


# Blobs and trees ------------------------------------------------------------------------------


def _create_blob(gh: GitHubStandIn, info: Repo, body: dict[str, Any]) -> Response:
    content, encoding = body.get("content"), body.get("encoding", "utf-8")
    if not isinstance(content, str):
        return gh._invalid("Blob", "content", "missing_field")
    if encoding not in ("utf-8", "base64"):
        return gh._invalid("Blob", "encoding", "invalid")
    try:
        data = (
            base64.b64decode(content, validate=True) if encoding == "base64" else content.encode()
        )
    except (binascii.Error, ValueError):
        return gh._invalid("Blob", "content", "invalid")
    sha = objects.write_blob(info.path, data)
    url = f"{gh.url}/repos/{info.full_name}/git/blobs/{sha}"
    return gh._json({"url": url, "sha": sha}, 201, {"location": url})


def _create_tree(gh: GitHubStandIn, info: Repo, body: dict[str, Any]) -> Response:
    base_tree, listed = body.get("base_tree"), body.get("tree")
    if not isinstance(listed, list):
        return gh._invalid("Tree", "tree", "missing_field")
    if base_tree is not None and objects.object_type(info.path, base_tree) != "tree":
        return gh._error(422, "base_tree is not a valid tree oid")
    entries: list[objects.TreeEntry] = []
    for item in listed:
        entry = _tree_entry(gh, info, item)
        if isinstance(entry, Response):
            return entry
        entries.append(entry)
    try:
        sha = objects.build_tree(info.path, base_tree, entries)
    except objects.GitFailed as exc:
        return gh._error(422, f"Invalid tree info: {exc}")
    return gh._json(_tree_json(gh, info, sha, recursive=False), 201)


def _tree_entry(gh: GitHubStandIn, info: Repo, item: Any) -> objects.TreeEntry | Response:
    """One entry of a tree request, or GitHub's 422 for it."""
    if not isinstance(item, dict):
        return gh._invalid("Tree", "tree", "invalid")
    path, mode, kind = item.get("path"), item.get("mode"), item.get("type")
    if not isinstance(path, str) or not _fair_path(path):
        return gh._error(422, f"tree.path contains a malformed path component: {path!r}")
    if mode not in objects.MODES:
        return gh._error(422, f"tree.mode {mode!r} is not one of {', '.join(objects.MODES)}")
    if kind != objects.MODES[mode]:
        return gh._error(422, f"tree.type {kind!r} does not fit mode {mode}")
    if "content" in item and "sha" in item:
        return gh._error(422, "tree entries may name a sha or content, not both")
    if "content" in item:
        if kind != "blob" or not isinstance(item["content"], str):
            return gh._invalid("Tree", "content", "invalid")
        return objects.TreeEntry(
            path, mode, objects.write_blob(info.path, item["content"].encode())
        )
    sha = item.get("sha")
    if sha is None:
        return objects.TreeEntry(path, mode, None)  # GitHub deletes the path
    found = objects.object_type(info.path, sha)
    if kind == "commit" and isinstance(sha, str) and objects.SHA.match(sha):
        return objects.TreeEntry(path, mode, sha)  # a submodule's commit lives elsewhere
    if found != kind:
        return gh._error(422, f"tree.sha {sha} is not a valid {kind}")
    return objects.TreeEntry(path, mode, sha)


def _fair_path(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and all(p and p not in (".", "..") and p.lower() != ".git" for p in parts)


def _tree_json(gh: GitHubStandIn, info: Repo, sha: str, *, recursive: bool) -> dict[str, Any]:
    api = f"{gh.url}/repos/{info.full_name}/git"
    entries = objects.tree_listing(info.path, sha, recursive)
    for entry in entries:
        if entry["type"] in ("blob", "tree"):
            entry["url"] = f"{api}/{entry['type']}s/{entry['sha']}"
    return {"sha": sha, "url": f"{api}/trees/{sha}", "tree": entries, "truncated": False}


# Reading --------------------------------------------------------------------------------------


def _read(gh: GitHubStandIn, request: Request, info: Repo, kind: str, sha: str) -> Response:
    wanted = {"blobs": "blob", "trees": "tree", "commits": "commit"}.get(kind)
    if wanted is None or objects.object_type(info.path, sha) != wanted:
        raise NotFound
    if wanted == "commit":
        commit = objects.read_commit(info.path, sha)
        return gh._json(commits.commit_json(gh, info.full_name, sha, commit))
    if wanted == "tree":
        recursive = request.query_params.get("recursive") not in (None, "", "0", "false")
        return gh._json(_tree_json(gh, info, sha, recursive=recursive))
    data = objects.read_blob(info.path, sha)
    encoded = base64.encodebytes(data).decode()  # GitHub wraps base64 at 60 columns too
    return gh._json(
        {
            "sha": sha,
            "node_id": base64.b64encode(f"0:Blob{sha}".encode()).decode(),
            "size": len(data),
            "url": f"{gh.url}/repos/{info.full_name}/git/blobs/{sha}",
            "content": encoded,
            "encoding": "base64",
        }
    )
