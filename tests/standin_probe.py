"""Probes of the GitHub stand-in against GitHub's own description: one request per operation
it serves, in a world where every answer has something to show; bodies that break each
request schema; and method and path pairs GitHub does not describe. Used by
tests/test_standin_openapi.py, and by hand to measure a stand-in:

    python -m tests.standin_probe
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from standins.github import GitHubStandIn
from standins.github_openapi import METHODS, Description, Operation, description
from tests.standin_requests import probes
from tests.standin_world import Probe, World


@dataclass
class Report:
    answers: int = 0
    missing: list[str] = field(default_factory=list)  # answers that miss the description
    refused: list[str] = field(default_factory=list)  # valid probes that did not answer 2xx
    foreign: list[str] = field(default_factory=list)  # undescribed pairs that answered 2xx
    foreign_tried: int = 0
    missing_tried: int = 0
    invalid_tried: int = 0
    invalid_accepted: list[str] = field(default_factory=list)


def send(world: World, probe: Probe, body: Any = None, method: str | None = None) -> httpx.Response:
    content = None if body is None else json.dumps(body).encode()
    return world.client.request(
        method or probe.method,
        world.gh.url + probe.url(),
        content=content,
        headers={**world.headers(probe.auth), "Content-Type": "application/json"},
        follow_redirects=False,
        timeout=30,
    )


def check_answer(
    spec: Description, operation: Operation, answer: httpx.Response, report: Report, label: str
) -> None:
    report.answers += 1
    if not answer.headers.get("content-type", "").startswith("application/json"):
        problems = [] if answer.status_code in (204, 302) else ["not JSON"]
    else:
        problems = spec.answer_problems(operation, answer.status_code, answer.json())
    if problems:
        report.missing.append(f"{label} {answer.status_code}: {problems[:3]}")


def breakers(spec: Description, operation: Operation, valid: Any) -> Iterator[tuple[str, Any]]:
    """Bodies the description refuses: the valid one without each required field, each of its
    fields of a wrong type or outside its enum, and a body that is not an object."""
    if operation.body_pointer is None:
        return
    schema = spec.resolve(operation.body_pointer) or {}
    base = dict(valid or {})
    candidates: list[tuple[str, Any]] = [("not an object", ["x"])]
    for name in schema.get("required", []):
        candidates.append((f"without {name}", {k: v for k, v in base.items() if k != name}))
    for name, prop in (schema.get("properties") or {}).items():
        wrong = {"string": 12345, "integer": "x", "number": "x", "boolean": "yes"}
        wrong |= {"array": "x", "object": "x"}
        kind = prop.get("type")
        if isinstance(kind, str) and kind in wrong:
            candidates.append((f"{name} of a wrong type", {**base, name: wrong[kind]}))
        if "enum" in prop:
            candidates.append((f"{name} outside its enum", {**base, name: "not-a-member"}))
    validator = spec.validator(operation.body_pointer)
    for label, body in candidates:
        if not validator.is_valid(body):
            yield label, body


def run(world: World) -> Report:
    spec, report = description(), Report()
    for probe in probes(world):
        operation = spec.operation(probe.method, probe.path)
        assert operation is not None, f"{probe.method} {probe.path} is not GitHub's"
        label = f"{probe.method} {probe.path}"
        answer = send(world, probe, probe.body)
        if not 200 <= answer.status_code < 400:
            report.refused.append(f"{label}: {answer.status_code} {answer.text[:200]}")
        check_answer(spec, operation, answer, report, label)
        for name, body in breakers(spec, operation, probe.body):
            report.invalid_tried += 1
            answer = send(world, probe, body)
            if answer.status_code < 400:
                report.invalid_accepted.append(f"{label} {name}: {answer.status_code}")
            elif operation.response_pointer(answer.status_code, spec):
                check_answer(spec, operation, answer, report, f"{label} {name}")
    _missing(world, spec, report)
    _foreign(world, spec, report)
    return report


def _missing(world: World, spec: Description, report: Report) -> None:
    """What a path names that does not exist is a 404, in GitHub's shape where it has one."""
    for probe in probes(world):
        operation = spec.operation(probe.method, probe.path)
        assert operation is not None
        for name in sorted(operation.integer_params & set(probe.params)):
            absent = Probe(
                probe.method, probe.path, {**probe.params, name: 987654321}, auth=probe.auth
            )
            answer = send(world, absent, probe.body)
            label = f"{probe.method} {probe.path} with no such {name}"
            report.missing_tried += 1
            if answer.status_code != 404:
                report.refused.append(f"{label}: {answer.status_code}, not 404")
            elif operation.response_pointer(404, spec):
                check_answer(spec, operation, answer, report, label)


FOREIGN_PATHS = (
    "/nope/nothing",
    "/repos/{owner}/{repo}/collaborators/alice/permission/extra",
    "/repos/{owner}/{repo}/issues/1/comments/2",
    "/repos/{owner}/{repo}/issues/comments",
    "/repos/{owner}/{repo}/branches",
    "/repos/{owner}/{repo}/check-runs",
    "/repos/{owner}/{repo}/pulls/1/merge",
    "/repos/{owner}/{repo}/actions/runs/1/rerun",
    "/repos/{owner}/{repo}/deployments/1/statuses/2/extra",
)


def _foreign(world: World, spec: Description, report: Report) -> None:
    """Each method GitHub does not describe on each probed path must not answer 2xx."""
    seen: dict[str, Probe] = {}
    for probe in probes(world):
        seen.setdefault(probe.path, probe)
    for path, probe in seen.items():
        for method in (m.upper() for m in METHODS):
            if spec.operation(method, path) is not None:
                continue
            report.foreign_tried += 1
            answer = send(world, probe, probe.body or {}, method=method)
            if 200 <= answer.status_code < 300:
                report.foreign.append(f"{method} {path}: {answer.status_code}")
    for path in FOREIGN_PATHS:
        for method in (m.upper() for m in METHODS):
            if spec.operation(method, path) is not None:
                continue
            report.foreign_tried += 1
            answer = send(world, Probe(method, path), {}, method=method)
            if 200 <= answer.status_code < 300:
                report.foreign.append(f"{method} {path}: {answer.status_code}")


def summary(report: Report) -> str:
    return (
        f"{len(report.missing)} of {report.answers} JSON answers miss the description; "
        f"{len(report.foreign)} of {report.foreign_tried} undescribed method+path pairs answer "
        f"2xx; {len(report.invalid_accepted)} of {report.invalid_tried} requests the "
        f"description refuses are accepted; {len(report.refused)} valid probes refused"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, GitHubStandIn(Path(tmp)) as gh:
        report = run(World(gh))
    print(summary(report))
    for kind in ("missing", "foreign", "invalid_accepted", "refused"):
        for line in getattr(report, kind):
            print(f"  {kind}: {line}")


if __name__ == "__main__":
    main()
