"""Builds the example eval task set (examples/eval/quixbugs/) from a QuixBugs checkout.

QuixBugs (https://github.com/jkoppel/QuixBugs, MIT, Copyright 2017-2019 James Koppel): 40
small programs, each with one real one-line bug, a corrected version and JSON test cases. This
script makes one git repository holding the buggy Python programs and their test data (the
task's `base_commit`), and one SWE-bench instance per program: `patch` is the corrected
program, `test_patch` adds its pytest file, FAIL_TO_PASS / PASS_TO_PASS come from running
those tests on the buggy and the corrected program. Run once; its output is committed:

    python scripts/build_quixbugs_tasks.py --source QUIXBUGS_DIR --out examples/eval/quixbugs
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROGRAMS = (
    "gcd",
    "flatten",
    "get_factors",
    "is_valid_parenthesization",
    "lis",
    "pascal",
    "powerset",
    "to_base",
    "quicksort",
    "sieve",
    "max_sublist_sum",
    "next_palindrome",
)
TEST_CMD = "python3 -m pytest -q -rA -p no:cacheprovider"
FIXED_DATE = "2017-01-01T00:00:00+00:00"
OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR) (\S+)", re.M)


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(repo),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "QuixBugs",
        "GIT_AUTHOR_EMAIL": "quixbugs@example.invalid",
        "GIT_COMMITTER_NAME": "QuixBugs",
        "GIT_COMMITTER_EMAIL": "quixbugs@example.invalid",
        "GIT_AUTHOR_DATE": FIXED_DATE,
        "GIT_COMMITTER_DATE": FIXED_DATE,
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, input=stdin, capture_output=True, text=True, check=True
    ).stdout


def outcomes(repo: Path, test_file: str) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", test_file],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return {test_id: outcome for outcome, test_id in OUTCOME.findall(result.stdout)}


def problem_statement(name: str, source: str) -> str:
    docstring = ""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            docstring = str(node.value.value).strip()
    return (
        f"`{name}` in python_programs/{name}.py gives wrong answers for some inputs. "
        f"Fix the bug without changing its signature. What it should do:\n\n{docstring}\n"
    )


def build(source: Path, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "quixbugs"
        (repo / "python_programs").mkdir(parents=True)
        (repo / "python_testcases").mkdir()
        (repo / "json_testcases").mkdir()
        shutil.copy(source / "conftest.py", repo / "conftest.py")
        shutil.copy(source / "python_testcases" / "load_testdata.py", repo / "python_testcases")
        shutil.copy(source / "LICENSE", repo / "LICENSE")
        (repo / "README.md").write_text(
            "Buggy programs from QuixBugs (MIT, see LICENSE). Tests: "
            "`python3 -m pytest python_testcases`.\n"
        )
        for name in PROGRAMS:
            shutil.copy(source / "python_programs" / f"{name}.py", repo / "python_programs")
            shutil.copy(source / "json_testcases" / f"{name}.json", repo / "json_testcases")
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "QuixBugs: the buggy Python programs and their test data")
        base = git(repo, "rev-parse", "HEAD").strip()
        tasks = []
        for name in PROGRAMS:
            program = f"python_programs/{name}.py"
            test_file = f"python_testcases/test_{name}.py"
            buggy = (repo / program).read_text()
            shutil.copy(source / "python_testcases" / f"test_{name}.py", repo / test_file)
            git(repo, "add", "-N", test_file)
            test_patch = git(repo, "diff", "--", test_file)
            before = outcomes(repo, test_file)
            shutil.copy(source / "correct_python_programs" / f"{name}.py", repo / program)
            patch = git(repo, "diff", "--", program)
            after = outcomes(repo, test_file)
            git(repo, "checkout", "-q", "--", program)
            git(repo, "rm", "-q", "--cached", test_file)
            (repo / test_file).unlink()
            fixed = [t for t, o in after.items() if o == "PASSED"]
            fail_to_pass = sorted(t for t in fixed if before.get(t) != "PASSED")
            pass_to_pass = sorted(t for t in fixed if before.get(t) == "PASSED")
            assert fail_to_pass, name
            tasks.append(
                {
                    "instance_id": f"quixbugs__{name}",
                    "repo": "quixbugs.bundle",
                    "base_commit": base,
                    "problem_statement": problem_statement(name, buggy),
                    "patch": patch,
                    "test_patch": test_patch,
                    "FAIL_TO_PASS": fail_to_pass,
                    "PASS_TO_PASS": pass_to_pass,
                    "test_cmd": TEST_CMD,
                }
            )
        out.mkdir(parents=True, exist_ok=True)
        git(repo, "bundle", "create", str((out / "quixbugs.bundle").resolve()), "main")
        (out / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
        shutil.copy(source / "LICENSE", out / "LICENSE-QuixBugs.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    build(args.source, args.out)


if __name__ == "__main__":
    main()
