"""The GitHub stand-in held to GitHub's own OpenAPI description (tests/fixtures/github-openapi/,
from @octokit/openapi): every operation it serves is GitHub's and is probed; each JSON answer
fits the description's schema for that operation and status; bodies that break an operation's
request schema get a 4xx; method and path pairs GitHub does not describe never answer 2xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.trim_github_openapi import OPERATIONS
from standins.github import GitHubStandIn
from standins.github_openapi import DESCRIPTION, Description, _json_schema, description
from standins.github_routes import routes
from tests.standin_probe import run, summary
from tests.standin_requests import probes
from tests.standin_world import World


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with GitHubStandIn(tmp_path_factory.mktemp("gh")) as gh:
        yield World(gh)


def test_the_description_is_githubs_as_published_and_trimmed() -> None:
    folder = DESCRIPTION.parent
    assert "MIT License" in (folder / "LICENSE").read_text()
    spec = description()
    assert spec.version == "23.0.2" and spec.document["openapi"].startswith("3.0")
    kept = {(op.method.lower(), op.path) for op in spec.operations}
    assert kept == set(OPERATIONS)  # what scripts/trim_github_openapi.py keeps, no more
    assert "@octokit/openapi" in (folder / "README.md").read_text()


def test_every_route_is_an_operation_of_githubs_and_is_probed(world: World) -> None:
    served = set(routes())
    spec = description()
    assert [r for r in served if spec.operation(*r) is None] == []
    assert {(p.method, p.path) for p in probes(world)} == served


def test_every_answer_fits_the_description_and_what_it_refuses_is_refused(world: World) -> None:
    report = run(world)
    print(summary(report))  # the figures: pytest -s shows them
    assert report.answers > len(routes()) and report.invalid_tried > 50
    assert report.missing == []
    assert report.foreign == []
    assert report.invalid_accepted == []
    assert report.refused == []
    assert world.gh.errors == []


def _post(world: World, path: str, body: Any) -> httpx.Response:
    return world.client.post(
        world.gh.url + path.format(owner="octo", repo="widgets"),
        content=json.dumps(body).encode(),
        headers=world.headers("token"),
    )


def test_a_refused_body_gets_githubs_422_and_is_recorded(world: World) -> None:
    before = len(world.gh.refused)
    missing = _post(world, "/repos/{owner}/{repo}/pulls", {"title": "x", "head": "feature"})
    assert missing.status_code == 422
    assert missing.json() == {
        "message": 'Invalid request.\n\n"base" wasn\'t supplied.',
        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
        "status": "422",
    }
    wrong = _post(world, "/repos/{owner}/{repo}/statuses/" + world.head, {"state": "green"})
    assert wrong.status_code == 422
    assert "For 'properties/state', \"green\" is not a member of" in wrong.json()["message"]
    typed = _post(world, "/repos/{owner}/{repo}/issues/1/comments", {"body": 5})
    assert (
        typed.json()["message"] == "Invalid request.\n\nFor 'properties/body', 5 is not a string."
    )
    assert len(world.gh.refused) == before + 3


def test_a_comment_too_long_is_githubs_validation_failed(world: World) -> None:
    path = "/repos/{owner}/{repo}/issues/{issue_number}/comments"
    too_long = _post(world, path.replace("{issue_number}", "1"), {"body": "x" * 65_537})
    assert too_long.status_code == 422
    assert (
        too_long.json()["errors"][0]["message"] == "Body is too long (maximum is 65536 characters)"
    )
    operation = description().operation("POST", path)
    assert operation is not None
    assert description().answer_problems(operation, 422, too_long.json()) == []


def test_githubs_rules_in_prose_are_held_too(world: World) -> None:
    """A check run completed without a conclusion, one set to `stale`, a pull request without
    a title: the schema lets them through, GitHub's text does not."""
    base = {"name": "x", "head_sha": world.head}
    for body in (
        {**base, "status": "completed"},
        {**base, "completed_at": "2024-01-01T00:00:00Z"},
        {**base, "conclusion": "stale"},
    ):
        assert _post(world, "/repos/{owner}/{repo}/check-runs", body).status_code == 422, body
    untitled = _post(world, "/repos/{owner}/{repo}/pulls", {"head": "feature", "base": "main"})
    assert untitled.json()["message"] == 'Invalid request.\n\n"title" wasn\'t supplied.'


def test_undescribed_methods_and_malformed_ids_are_404(world: World) -> None:
    gh, headers = world.gh, world.headers("token")
    for method, path in (
        ("PUT", "/repos/octo/widgets"),
        ("DELETE", "/repos/octo/widgets/pulls"),
        ("POST", "/repos/octo/widgets/collaborators/alice/permission"),
        ("GET", "/repos/octo/widgets/issues/1/labels/bug"),
        ("GET", "/repos/octo/widgets/issues/1e3"),
        ("GET", "/repos/octo/widgets/check-runs/-1"),
    ):
        answer = world.client.request(method, gh.url + path, headers=headers)
        assert answer.status_code == 404, (method, path)
        assert answer.json()["message"] == "Not Found"


def test_nullable_and_overlapping_alternatives_become_json_schema() -> None:
    assert _json_schema({"type": "string", "nullable": True}) == {"type": ["string", "null"]}
    assert _json_schema({"type": "string", "enum": ["a"], "nullable": True})["enum"] == ["a", None]
    wrapped = _json_schema({"$ref": "#/x", "nullable": True})
    assert wrapped == {"anyOf": [{"$ref": "#/x"}, {"type": "null"}]}
    either = _json_schema({"oneOf": [{"type": "object"}, {"type": "object"}], "discriminator": {}})
    assert either == {"anyOf": [{"type": "object"}, {"type": "object"}]}


def test_a_description_matches_paths_as_github_routes_them(tmp_path: Path) -> None:
    document = {
        "openapi": "3.0.3",
        "info": {"version": "0"},
        "paths": {
            "/r/{ref}": {"get": {"parameters": [_param("ref", True)], "responses": {}}},
            "/r/{ref}/status": {"get": {"parameters": [_param("ref", True)], "responses": {}}},
            "/i/{number}": {"get": {"parameters": [_param("number")], "responses": {}}},
        },
    }
    spec = Description(document)
    found = spec.match("GET", "/r/heads/main/status")
    assert found is not None and found[0].path == "/r/{ref}/status"
    assert found[1] == {"ref": "heads/main"}
    found = spec.match("GET", "/r/heads/main")
    assert found is not None and found[1] == {"ref": "heads/main"}
    assert spec.match("POST", "/r/x") is None and spec.match("GET", "/i/1/2") is None
    assert spec.operation("GET", "/i/{number}") is not None
    assert spec.operation("GET", "/i/{number}").integer_params == {"number"}  # type: ignore[union-attr]


def _param(name: str, many: bool = False) -> dict[str, Any]:
    schema = {"type": "string"} if many else {"type": "integer"}
    return {"name": name, "in": "path", "required": True, "schema": schema, "x-multi-segment": many}
