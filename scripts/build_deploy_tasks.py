"""Builds the example deploy-test task set (examples/eval/deploy/) from the QuixBugs one.

Each task: the buggy QuixBugs programs (examples/eval/quixbugs/quixbugs.bundle) deployed to
`production`, where the deploy's smoke check calls one program on its first JSON test cases
and fails. The log's failing lines are real: each smoke request runs the buggy program in a
Python process and logs what it really did (its traceback, or the wrong answer beside the
expected one); the deploy's own lines around them (build, start, health, rollback) are written
here in the shape deploy services print them, at fixed times. The `deployment_status` payload
is GitHub's recorded one (shared/fixtures/github-webhooks/deployment_status/payload.json) with
the state, description, log URL and deployed commit of this failure. Grading (`patch`,
`test_patch`, FAIL_TO_PASS, PASS_TO_PASS, `test_cmd`) is the QuixBugs task's. Run once; its
output is committed:

    python scripts/build_deploy_tasks.py --out examples/eval/deploy
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUIXBUGS = ROOT / "examples" / "eval" / "quixbugs"
FIXTURE = ROOT.parent / "shared" / "fixtures" / "github-webhooks" / "deployment_status"
PROGRAMS = {"gcd": 3, "flatten": 3, "to_base": 4, "sieve": 3}  # smoke requests each
RUNNER = "/opt/deploy/smoke.py"  # where the deploy service's smoke runner lives (not the repo)
APP = "/srv/quixbugs"  # where the release is unpacked
SMOKE = """import importlib, json, sys, traceback
sys.path.insert(0, sys.argv[1])


def call(name, args):
    program = getattr(importlib.import_module("python_programs." + name), name)
    answer = program(*args)
    return json.dumps(list(answer) if hasattr(answer, "__next__") else answer)


try:
    print("OK " + call(sys.argv[2], json.loads(sys.argv[3])))
except Exception:
    print("ERROR")
    traceback.print_exc(file=sys.stdout)
"""


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


def smoke(runner: Path, checkout: Path, name: str, args: list[Any]) -> tuple[bool, str]:
    """One smoke request: (answered without an error, what the runner printed)."""
    done = subprocess.run(
        [sys.executable, str(runner), str(checkout), name, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = done.stdout.replace(str(checkout), APP).replace(str(runner), RUNNER)
    # The standard library where a server's Python has it, not where this machine's does.
    text = text.replace(str(Path(json.__file__).parent.parent), "/usr/lib/python3.11")
    return text.startswith("OK "), text.strip()


def smoke_lines(runner: Path, checkout: Path, name: str, count: int) -> tuple[list[str], str]:
    """The smoke check's log lines and the status description."""
    cases = [json.loads(line) for line in (checkout / "json_testcases" / f"{name}.json").open()]
    lines, failures, first = [], 0, ""
    for number, (args, expected) in enumerate(cases[:count]):
        at = f"2026-03-03T09:41:{10 + number:02d}.{412 + 37 * number:03d}Z"
        request = f"POST /v1/{name} {json.dumps({'args': args})}"
        answered, said = smoke(runner, checkout, name, args)
        if not answered:
            lines += [f"{at} [smoke] {request} -> 500 Internal Server Error"]
            lines += [f"{at} [app] ERROR Exception on /v1/{name} [POST]", *said.splitlines()[1:]]
            failures += 1
            first = first or f"POST /v1/{name} returned 500"
            continue
        got = json.loads(said[3:])
        if got == expected:
            lines.append(f"{at} [smoke] {request} -> 200 {json.dumps(got)} ok")
            continue
        lines.append(f"{at} [smoke] {request} -> 200 {json.dumps(got)}")
        lines.append(f"{at} [smoke] FAIL: expected {json.dumps(expected)}, got {json.dumps(got)}")
        failures += 1
        first = first or f"POST /v1/{name} answered {json.dumps(got)}, not {json.dumps(expected)}"
    lines.append(f"2026-03-03T09:41:15.020Z [smoke] {failures} of {count} smoke requests failed")
    return lines, f"Smoke test failed: {failures} of {count} requests ({first})"


def deploy_log(sha: str, smoke: list[str]) -> str:
    short = sha[:7]
    return "\n".join(
        [
            f"2026-03-03T09:40:51.004Z [deploy] production: deploying quixbugs-api at {short}",
            f"2026-03-03T09:40:51.377Z [build] fetching {short} into {APP}",
            "2026-03-03T09:40:53.918Z [build] python3 -m compileall -q python_programs: ok",
            "2026-03-03T09:40:54.102Z [deploy] starting 2 instances (release 58)",
            "2026-03-03T09:41:08.731Z [health] GET /healthz -> 200 (4 ms)",
            "2026-03-03T09:41:09.002Z [smoke] running the smoke check (smoke.yml)",
            *smoke,
            "2026-03-03T09:41:15.031Z [deploy] health check failed: rolling back to release 57",
            "2026-03-03T09:41:18.660Z [deploy] production is on release 57 again",
            "Error: the deploy's health check failed (exit code 1)",
            "",
        ]
    )


def payload(sha: str, description: str, deployment_id: int) -> dict[str, Any]:
    text = (FIXTURE / "payload.json").read_text().replace("Codertocat/Hello-World", "octo/quixbugs")
    event = json.loads(text)
    log_url = f"https://deploy.quixbugs.example/deployments/{deployment_id}/log"
    event["deployment_status"].update(
        state="failure",
        description=description,
        environment="production",
        log_url=log_url,
        target_url=log_url,
    )
    event["deployment"].update(
        id=deployment_id, sha=sha, ref="main", environment="production", task="deploy"
    )
    event["repository"].update(name="quixbugs", full_name="octo/quixbugs")
    return event


def build(out: Path) -> None:
    tasks = {
        t["instance_id"]: t
        for t in map(json.loads, (QUIXBUGS / "tasks.jsonl").read_text().splitlines())
    }
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        checkout = Path(tmp) / "quixbugs"
        git("clone", "-q", str(QUIXBUGS / "quixbugs.bundle"), str(checkout))
        runner = Path(tmp) / "smoke.py"
        runner.write_text(SMOKE)
        for number, (name, count) in enumerate(PROGRAMS.items()):
            task = tasks[f"quixbugs__{name}"]
            git("checkout", "-q", task["base_commit"], cwd=checkout)
            smoked, description = smoke_lines(runner, checkout, name, count)
            sha = task["base_commit"]
            grading = {k: task[k] for k in ("patch", "test_patch", "FAIL_TO_PASS", "PASS_TO_PASS")}
            lines.append(
                {
                    "instance_id": f"deploy__{name}",
                    "repo": "../quixbugs/quixbugs.bundle",
                    "base_commit": sha,
                    "deployment_status": payload(sha, description, 145988746 + number),
                    "deploy_log": deploy_log(sha, smoked),
                    **grading,
                    "test_cmd": task["test_cmd"],
                }
            )
    out.mkdir(parents=True, exist_ok=True)
    (out / "tasks.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    build(parser.parse_args().out)


if __name__ == "__main__":
    main()
