"""The GitHub stand-in's repository routes: the repository, a branch with its head commit and
protection, a file or directory's contents, a git reference, and a collaborator's permission."""

from __future__ import annotations

import base64
import subprocess
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from standins import github_shapes as shapes
from standins.github_common import Call, NotFound, git

if TYPE_CHECKING:
    from standins.github import GitHubStandIn

ROLES = ("read", "triage", "write", "maintain", "admin")
_FIELDS = ("%T", "%P", "%an", "%ae", "%aI", "%cn", "%ce", "%cI", "%B")


def get_repo(gh: GitHubStandIn, call: Call) -> Response:
    return gh._json(gh._repo_json(gh.state.repos[call.repo]))


def get_branch(gh: GitHubStandIn, call: Call) -> Response:
    repo, branch = call.repo, call.params["branch"]
    sha = gh.branch_sha(repo, branch)
    if sha is None:
        raise NotFound
    api = f"{gh.url}/repos/{repo}/branches/{branch}"
    protected = branch == gh.state.repos[repo].default_branch
    checks = {"enforcement_level": "off", "contexts": [], "checks": []}
    return gh._json(
        {
            "name": branch,
            "commit": commit_json(gh, repo, sha),
            "_links": {"html": f"{gh.url}/{repo}/tree/{branch}", "self": api},
            "protected": protected,
            "protection": {"enabled": protected, "required_status_checks": checks},
            "protection_url": f"{api}/protection",
        }
    )


def commit_json(gh: GitHubStandIn, repo: str, sha: str) -> dict[str, Any]:
    """A commit as GitHub's commits API shows it (its authors are no GitHub users here)."""
    out = git("show", "-s", f"--format={'%x00'.join(_FIELDS)}", sha, cwd=gh.state.repos[repo].path)
    tree, parents, an, ae, ad, cn, ce, cd, message = out.split("\0")
    api, html = f"{gh.url}/repos/{repo}", f"{gh.url}/{repo}"
    return {
        "url": f"{api}/commits/{sha}",
        "sha": sha,
        "node_id": shapes.node_id("Commit", int(sha[:7], 16)),
        "html_url": f"{html}/commit/{sha}",
        "comments_url": f"{api}/commits/{sha}/comments",
        "commit": {
            "url": f"{api}/git/commits/{sha}",
            "author": {"name": an, "email": ae, "date": ad},
            "committer": {"name": cn, "email": ce, "date": cd},
            "message": message.strip(),
            "comment_count": 0,
            "tree": {"sha": tree, "url": f"{api}/git/trees/{tree}"},
        },
        "author": None,
        "committer": None,
        "parents": [
            {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{html}/commit/{p}"}
            for p in parents.split()
        ],
    }


def get_content(gh: GitHubStandIn, call: Call) -> Response:
    repo, path = call.repo, call.params["path"].strip("/")
    info = gh.state.repos[repo]
    ref = call.query.get("ref") or info.default_branch
    if ref.startswith("-"):
        raise NotFound
    try:
        kind = git("cat-file", "-t", f"{ref}:{path}", cwd=info.path).strip()
        if kind == "tree":
            listing = git("ls-tree", "-l", f"{ref}:{path}", cwd=info.path)
            return gh._json([_entry(gh, repo, ref, path, line) for line in listing.splitlines()])
        data = subprocess.run(
            ["git", "cat-file", "blob", f"{ref}:{path}"],
            cwd=info.path,
            capture_output=True,
            check=True,
        ).stdout
        sha = git("rev-parse", f"{ref}:{path}", cwd=info.path).strip()
    except subprocess.CalledProcessError:
        raise NotFound from None
    item = _content_item(gh, repo, ref, path, "file", sha, len(data))
    content = base64.encodebytes(data).decode()
    return gh._json({**item, "encoding": "base64", "content": content})


def _entry(gh: GitHubStandIn, repo: str, ref: str, folder: str, line: str) -> dict[str, Any]:
    meta, name = line.split("\t", 1)
    _, kind, sha, size = meta.split()
    path = f"{folder}/{name}" if folder else name
    typed = {"blob": "file", "tree": "dir", "commit": "submodule"}.get(kind, "file")
    return _content_item(gh, repo, ref, path, typed, sha, int(size) if size.isdigit() else 0)


def _content_item(
    gh: GitHubStandIn, repo: str, ref: str, path: str, kind: str, sha: str, size: int
) -> dict[str, Any]:
    api = f"{gh.url}/repos/{repo}"
    url = f"{api}/contents/{path}?ref={ref}"
    git_url = f"{api}/git/{'trees' if kind == 'dir' else 'blobs'}/{sha}"
    html = f"{gh.url}/{repo}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{path}"
    download = f"{gh.url}/{repo}/raw/{ref}/{path}" if kind == "file" else None
    return {
        "type": kind,
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": sha,
        "size": size,
        "url": url,
        "git_url": git_url,
        "html_url": html,
        "download_url": download,
        "_links": {"self": url, "git": git_url, "html": html},
    }


def get_ref(gh: GitHubStandIn, call: Call) -> Response:
    repo, ref = call.repo, call.params["ref"]
    path = gh.state.repos[repo].path
    if ref.startswith("-") or not ref.startswith(("heads/", "tags/")):
        raise NotFound
    try:
        sha = git("rev-parse", "--verify", "--quiet", f"refs/{ref}", cwd=path).strip()
        kind = git("cat-file", "-t", sha, cwd=path).strip()
    except subprocess.CalledProcessError:
        raise NotFound from None
    api = f"{gh.url}/repos/{repo}/git"
    target = {"type": kind, "sha": sha, "url": f"{api}/{kind}s/{sha}"}
    node = shapes.node_id("Ref", shapes.stable_id(f"{repo}:{ref}"))
    return gh._json(
        {"ref": f"refs/{ref}", "node_id": node, "url": f"{api}/refs/{ref}", "object": target}
    )


def collaborator_permission(gh: GitHubStandIn, call: Call) -> Response:
    login = call.params["username"]
    role = gh.state.collaborators.get((call.repo, login), "none")
    legacy = {"maintain": "write", "triage": "read"}.get(role, role)
    rank = ROLES.index(role) if role in ROLES else -1
    granted = {name: rank >= ROLES.index(name) for name in ROLES}
    permissions = {"pull": granted["read"], "push": granted["write"], "admin": granted["admin"]}
    permissions |= {"triage": granted["triage"], "maintain": granted["maintain"]}
    user = {**gh._user(login), "role_name": role, "permissions": permissions}
    return gh._json({"permission": legacy, "role_name": role, "user": user})
