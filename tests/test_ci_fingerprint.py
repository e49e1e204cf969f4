"""The fingerprint that caps repair attempts per failure, on the real corpus: the same across
reruns of one failure (times, durations, ids, temp paths and addresses change), different
between different failures."""

from __future__ import annotations

import gzip
import itertools
import json
import random
import re
from functools import cache
from pathlib import Path

from bot.triggers.ci_log import excerpt, fingerprint, normalize
from bot.triggers.ci_signals import shape

CORPUS = Path(__file__).parent / "fixtures" / "ci-logs-real"
LABELS: dict[str, dict[str, object]] = json.loads((CORPUS / "labels.json").read_text())


@cache
def log_of(name: str) -> str:
    return gzip.decompress((CORPUS / f"{name}.log.gz").read_bytes()).decode()


@cache
def mark(name: str) -> str:
    return fingerprint("CI / test", excerpt(log_of(name)).signature)


def rerun(log: str, seed: int) -> str:
    """The same failure run again: every timestamp, duration, long id, temp path and address
    replaced by another of its kind."""
    rng = random.Random(seed)

    def digits(match: re.Match[str]) -> str:
        return "".join(rng.choice("0123456789") for _ in match.group(0))

    log = re.sub(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z",
        lambda m: "2031-07-0" + digits(m)[:1] + "T11:22:33.4455667Z",
        log,
    )
    log = re.sub(
        r"\b\d\d:\d\d:\d\d\b",
        lambda m: f"{rng.randrange(24):02}:{rng.randrange(60):02}:{rng.randrange(60):02}",
        log,
    )
    log = re.sub(r"\b\d+(?:\.\d+)?(?= ?(?:ms|s|sec|seconds)\b)", digits, log)
    log = re.sub(
        r"0x[0-9a-f]{6,}",
        lambda m: "0x" + "".join(rng.choice("0123456789abcdef") for _ in m.group(0)[2:]),
        log,
    )
    log = re.sub(r"/tmp/[\w.-]+", lambda m: f"/tmp/tmp{rng.randrange(10**8):08}", log)
    return re.sub(r"\b\d{7,}\b", digits, log)


def test_a_rerun_of_the_same_failure_keeps_its_fingerprint() -> None:
    names = sorted(LABELS)[::4]
    changed = [
        n
        for n in names
        if fingerprint("CI / test", excerpt(rerun(log_of(n), 7)).signature) != mark(n)
    ]
    assert changed == []


@cache
def failure_keys() -> dict[str, tuple[object, str]]:
    """Each log's failure as its label reads: the project and the labelled lines, masked."""
    key = {}
    for name, entry in LABELS.items():
        lines = normalize(log_of(name))
        first, last = entry["failure_lines"][0]  # type: ignore[index]
        key[name] = (entry["project"], shape(" ".join(lines[first - 1 : last])))
    return key


def test_the_same_failure_recorded_twice_has_one_fingerprint() -> None:
    """Logs of one project whose labelled lines read the same (reruns, or the same break on
    the next push): most share a fingerprint."""
    key = failure_keys()
    pairs = [(a, b) for a, b in itertools.combinations(sorted(LABELS), 2) if key[a] == key[b]]
    same = [(a, b) for a, b in pairs if mark(a) == mark(b)]
    assert len(pairs) >= 20 and len(same) >= 0.8 * len(pairs), (len(same), len(pairs))


def test_different_projects_failures_never_share_a_fingerprint() -> None:
    owners: dict[str, set[object]] = {}
    for name, entry in LABELS.items():
        owners.setdefault(mark(name), set()).add(entry["project"])
    shared = {m: projects for m, projects in owners.items() if len(projects) > 1}
    assert shared == {}
    # Within projects too, different failures mostly get different fingerprints.
    assert len(owners) >= 0.9 * len(set(failure_keys().values()))
