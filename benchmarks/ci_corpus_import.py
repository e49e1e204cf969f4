"""Rebuild tests/fixtures/ci-logs-real/ from the two public data sets it is taken from.

Not run by the tests: it documents where every log and label came from, and rebuilds them from
local git mirrors of the sources (bare repositories, read with `git show`):

- LogChunks (Brandt, Panichella, Zaidman, Beller: "LogChunks: A Data Set for Build Log Analysis",
  MSR 2020; data set CC BY 4.0, https://zenodo.org/record/3632351), as carried in
  lacinoire/master-thesis `tool/`: Travis CI logs of popular projects in 29 languages, each with
  the chunk a person marked as the reason the build failed. The chunk is text; it is located in
  the log here and turned into line ranges.
- labri-progress/cidiff (Apache-2.0), `data/breakages*`: failing and passing logs (Jenkins,
  Travis, GitHub Actions) with ground-truth error-line ranges (`E a-b` lines of `groundtruth`).

Logs are stored gzipped, byte for byte as published except that lines far from the failure may be
dropped from the head or the tail (the labels file says how many); line numbers are 1-based over
`str.splitlines()` of the stored text. Usage:
    python benchmarks/ci_corpus_import.py LOGCHUNKS_GIT_DIR CIDIFF_GIT_DIR
"""

# ruff: noqa: E402 (the imports wait for sys.path to be set right)
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder is first on sys.path, where queue.py would stand in for the
# standard library's `queue` (concurrent.futures imports it): take the folder off first.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import gzip
import hashlib
import html
import json
import re
import subprocess

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "ci-logs-real"
HEAD_KEEP = 2000  # lines kept before the first labelled line
TAIL_KEEP = 20000  # lines kept after the last labelled line: the end says how the step ended
# Longer labels cannot fit a 2,000-token excerpt whatever it does; such logs are left out.
MAX_LABEL_LINES = 60
MAX_LABEL_CHARS = 4000
PER_PROJECT = 2
PASSING_KEEP = 4000  # last lines kept of a passing log
QUICK_CHECKS = 10  # cidiff has 28 runs of one Terraform workflow; a few are enough
_ANSI = re.compile(r"\x1b?\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b")
_EXAMPLE = re.compile(r"<InputPath>(.*?)</InputPath>.*?<Output>(.*?)</Output>", re.S)


def _git(git_dir: str, *argv: str) -> bytes:
    return subprocess.run(["git", "-C", git_dir, *argv], capture_output=True, check=True).stdout


def _show(git_dir: str, path: str) -> str:
    return _git(git_dir, "show", f"HEAD:{path}").decode("utf-8", "replace")


def _plain(line: str) -> str:
    """A line as a reader sees it: the last carriage-return segment, no colour codes."""
    return _ANSI.sub("", line).strip()


def _locate(lines: list[str], chunk: list[str]) -> list[tuple[int, int]]:
    """Every place the chunk's non-empty lines occur in order (first and last may be partial)."""
    plain = [_plain(line) for line in lines]
    filled = [index for index, line in enumerate(plain) if line]
    hits = []
    for start in range(len(filled) - len(chunk) + 1):
        window = [plain[filled[start + offset]] for offset in range(len(chunk))]
        if chunk[0] not in window[0] or not window[-1].startswith(chunk[-1]):
            continue
        if len(chunk) > 1 and window[1:-1] != chunk[1:-1]:
            continue
        hits.append((filled[start], filled[start + len(chunk) - 1]))
    return hits


def _trim(lines: list[str], first: int, last: int) -> tuple[int, int]:
    return max(0, first - HEAD_KEEP), min(len(lines), last + TAIL_KEEP + 1)


def _split(project: str) -> str:
    return "holdout" if int(hashlib.sha1(project.encode()).hexdigest(), 16) % 10 < 3 else "dev"


def _store(
    name: str, text: str, ranges: list[tuple[int, int]], entry: dict[str, object]
) -> dict[str, object]:
    """Write the log trimmed around `ranges` (0-based, inclusive) and return its label entry."""
    lines = text.splitlines(keepends=True)
    low, high = _trim(lines, ranges[0][0], ranges[-1][1])
    (OUT / f"{name}.log.gz").write_bytes(gzip.compress("".join(lines[low:high]).encode(), mtime=0))
    entry.update(
        failure_lines=[[start - low + 1, end - low + 1] for start, end in ranges],
        original_lines=len(lines),
        head_lines_dropped=low,
        tail_lines_dropped=len(lines) - high,
    )
    return entry


def import_logchunks(git_dir: str) -> dict[str, dict[str, object]]:
    labels: dict[str, dict[str, object]] = {}
    sets = _git(
        git_dir, "ls-tree", "-r", "--name-only", "HEAD", "tool/example-sets/BuildFailureReason"
    )
    for set_path in sorted(sets.decode().split()):
        language, project = set_path.split("/")[-2], set_path.split("/")[-1].removesuffix(".xml")
        taken = 0
        for match in _EXAMPLE.finditer(_show(git_dir, set_path)):
            log_path, output = html.unescape(match.group(1)), html.unescape(match.group(2))
            chunk = [line for line in map(_plain, output.splitlines()) if line]
            if (
                not chunk
                or len(chunk) > MAX_LABEL_LINES
                or len(output) > MAX_LABEL_CHARS
                or taken == PER_PROJECT
            ):
                continue
            text = _show(git_dir, f"tool/samples/{log_path}")
            hits = _locate(text.splitlines(), chunk)
            if len(hits) != 1:
                continue  # a chunk found twice (or not at all) has no one right answer
            job = log_path.rsplit("/", 1)[-1].removesuffix(".log")
            name = f"logchunks-{language.lower().replace('#', 'sharp').replace('+', 'p')}-{project.replace('@', '-')}-{job}"
            labels[name] = _store(
                name,
                text,
                hits,
                {
                    "source": "LogChunks (Brandt et al., MSR 2020) via lacinoire/master-thesis",
                    "source_path": f"tool/samples/{log_path}",
                    "license": "CC-BY-4.0 (data set); log output of the public project's Travis CI build",
                    "project": project.replace("@", "/"),
                    "ci": "travis",
                    "ecosystem": language,
                    "split": _split(project),
                },
            )
            taken += 1
    return labels


def _ground_truth(text: str) -> list[tuple[int, int]]:
    ranges = []
    for line in text.splitlines():
        if line.startswith("E "):
            start, _, end = line[2:].strip().partition("-")
            ranges.append((int(start) - 1, int(end or start) - 1))
    return sorted(ranges)


def import_cidiff(git_dir: str) -> dict[str, dict[str, object]]:
    labels: dict[str, dict[str, object]] = {}
    listing = _git(
        git_dir, "ls-tree", "-r", "--name-only", "HEAD", "data/breakages", "data/breakages_dump"
    )
    cases = sorted(
        {
            path.rsplit("/", 1)[0]
            for path in listing.decode().splitlines()
            if path.endswith("/fail.log")
        }
    )
    quick_checks = 0
    for case in cases:
        if "Quick Checks" in case:
            quick_checks += 1
            if quick_checks > QUICK_CHECKS:
                continue
        truth = _show(git_dir, f"{case}/groundtruth")
        failing = _show(git_dir, f"{case}/fail.log")
        ranges = _ground_truth(truth)
        labelled = [line for start, end in ranges for line in failing.splitlines()[start : end + 1]]
        if len(labelled) > MAX_LABEL_LINES or sum(map(len, labelled)) > MAX_LABEL_CHARS:
            continue
        github = truth.startswith(("RAW_GITHUB", "FULL_GITHUB"))
        project = (
            "hashicorp/terraform"
            if "breakages_dump" in case
            else case.rsplit("/", 1)[-1].rsplit("_", 1)[0]
        )
        slug = re.sub(r"[^a-z0-9]+", "-", case.split("/", 2)[-1].lower()).strip("-")
        name = f"cidiff-{slug}"
        entry = _store(
            name,
            failing,
            ranges,
            {
                "source": "labri-progress/cidiff",
                "source_path": f"{case}/fail.log",
                "license": "Apache-2.0",
                "project": project,
                "ci": "github-actions" if github else "jenkins-or-travis",
                "ecosystem": "Go" if "breakages_dump" in case else "Java",
                "split": _split(project),
            },
        )
        passing = _show(git_dir, f"{case}/pass.log").splitlines(keepends=True)
        kept = passing[-PASSING_KEEP:]
        (OUT / f"{name}.pass.log.gz").write_bytes(gzip.compress("".join(kept).encode(), mtime=0))
        entry["passing_log"] = f"{name}.pass.log.gz"
        entry["passing_head_lines_dropped"] = len(passing) - len(kept)
        labels[name] = entry
    return labels


def main(argv: list[str]) -> int:
    logchunks, cidiff = argv[1], argv[2]
    OUT.mkdir(parents=True, exist_ok=True)
    labels = {**import_logchunks(logchunks), **import_cidiff(cidiff)}
    (OUT / "labels.json").write_text(json.dumps(labels, indent=1, sort_keys=True) + "\n")
    print(f"{len(labels)} logs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
