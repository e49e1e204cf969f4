"""Trims GitHub's published OpenAPI description to the operations the GitHub stand-in serves,
for tests/fixtures/github-openapi/ (the stand-in validates requests and answers against it).

The description comes from the npm package `@octokit/openapi` (MIT; GitHub's own
github/rest-api-description with Octokit's `x-octokit` extension). Run, from the repository:

    cd /tmp && npm pack @octokit/openapi && tar xzf octokit-openapi-*.tgz
    python scripts/trim_github_openapi.py /tmp/package

It keeps the `$ref` form (api.github.com.json, not the 70 MB dereferenced variant) and, of
`components`, only what the kept operations reach; examples are dropped, everything else is
GitHub's text as published. The package's LICENSE is copied beside it.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "github-openapi"

# Method and path, as GitHub's description spells them. The stand-in's route table must be a
# subset (tests/test_standin_openapi.py checks); add an operation here before serving it.
OPERATIONS = (
    # Apps and installations
    ("get", "/app"),
    ("post", "/app/installations/{installation_id}/access_tokens"),
    ("get", "/app/hook/deliveries"),
    ("post", "/app/hook/deliveries/{delivery_id}/attempts"),
    ("get", "/repos/{owner}/{repo}/installation"),
    ("get", "/user"),
    ("get", "/user/installations"),
    ("get", "/user/installations/{installation_id}/repositories"),
    # Repositories and their contents
    ("get", "/repos/{owner}/{repo}"),
    ("get", "/repos/{owner}/{repo}/branches/{branch}"),
    ("get", "/repos/{owner}/{repo}/contents/{path}"),
    ("get", "/repos/{owner}/{repo}/collaborators/{username}/permission"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}"),
    # The git database
    ("post", "/repos/{owner}/{repo}/git/blobs"),
    ("get", "/repos/{owner}/{repo}/git/blobs/{file_sha}"),
    ("post", "/repos/{owner}/{repo}/git/trees"),
    ("get", "/repos/{owner}/{repo}/git/trees/{tree_sha}"),
    ("post", "/repos/{owner}/{repo}/git/commits"),
    ("get", "/repos/{owner}/{repo}/git/commits/{commit_sha}"),
    ("get", "/repos/{owner}/{repo}/git/ref/{ref}"),
    ("post", "/repos/{owner}/{repo}/git/refs"),
    ("patch", "/repos/{owner}/{repo}/git/refs/{ref}"),
    # Issues, comments, labels, reactions
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("get", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("patch", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("post", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("delete", "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/reactions"),
    # Pull requests, reviews, review comments
    ("get", "/repos/{owner}/{repo}/pulls"),
    ("post", "/repos/{owner}/{repo}/pulls"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("patch", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/files"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("post", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/comments"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/comments"),
    ("post", "/repos/{owner}/{repo}/pulls/{pull_number}/comments/{comment_id}/replies"),
    ("get", "/repos/{owner}/{repo}/pulls/comments/{comment_id}"),
    ("get", "/repos/{owner}/{repo}/commits/{commit_sha}/pulls"),
    # Checks and statuses
    ("post", "/repos/{owner}/{repo}/check-runs"),
    ("get", "/repos/{owner}/{repo}/check-runs/{check_run_id}"),
    ("patch", "/repos/{owner}/{repo}/check-runs/{check_run_id}"),
    ("get", "/repos/{owner}/{repo}/check-suites/{check_suite_id}"),
    ("get", "/repos/{owner}/{repo}/check-suites/{check_suite_id}/check-runs"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/check-runs"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/check-suites"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/status"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/statuses"),
    ("post", "/repos/{owner}/{repo}/statuses/{sha}"),
    # Actions
    ("get", "/repos/{owner}/{repo}/actions/runs"),
    ("get", "/repos/{owner}/{repo}/actions/runs/{run_id}"),
    ("get", "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs"),
    ("get", "/repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt_number}/jobs"),
    ("post", "/repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs"),
    ("get", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs"),
    ("get", "/repos/{owner}/{repo}/actions/jobs/{job_id}"),
    ("get", "/repos/{owner}/{repo}/actions/jobs/{job_id}/logs"),
    # Deployments
    ("get", "/repos/{owner}/{repo}/deployments"),
    ("post", "/repos/{owner}/{repo}/deployments"),
    ("get", "/repos/{owner}/{repo}/deployments/{deployment_id}"),
    ("get", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses"),
    ("post", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses"),
    ("get", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses/{status_id}"),
)


def _without_examples(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _without_examples(value)
            for key, value in node.items()
            if key not in ("examples", "example")
        }
    if isinstance(node, list):
        return [_without_examples(item) for item in node]
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _reached_components(full: dict[str, Any], paths: dict[str, Any]) -> dict[str, Any]:
    """The components the kept paths reach, following references transitively."""
    kept: dict[str, dict[str, Any]] = {}
    pending = list(_refs(paths))
    while pending:
        ref = pending.pop()
        _, _, kind, name = ref.split("/", 3)  # "#/components/<kind>/<name>"
        if name in kept.setdefault(kind, {}):
            continue
        node = _without_examples(full["components"][kind][name])
        kept[kind][name] = node
        pending += _refs(node)
    return {kind: dict(sorted(items.items())) for kind, items in sorted(kept.items())}


def trim(full: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path in OPERATIONS:
        operation = full["paths"][path][method]  # a KeyError: GitHub has no such operation
        paths.setdefault(path, {})[method] = _without_examples(operation)
    return {
        "openapi": full["openapi"],
        "info": full["info"],
        "servers": full.get("servers", []),
        "externalDocs": full.get("externalDocs", {}),
        "paths": dict(sorted(paths.items())),
        "components": _reached_components(full, paths),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", type=Path, help="the unpacked @octokit/openapi package")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    full = json.loads((args.package / "generated" / "api.github.com.json").read_text())
    trimmed = trim(full)
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(trimmed, indent=1, sort_keys=False, ensure_ascii=False) + "\n"
    (args.out / "api.github.com.json").write_text(text)
    shutil.copyfile(args.package / "LICENSE", args.out / "LICENSE")
    version = json.loads((args.package / "package.json").read_text())["version"]
    print(f"@octokit/openapi {version}: {len(OPERATIONS)} operations, {len(text):,} characters")


if __name__ == "__main__":
    main()
