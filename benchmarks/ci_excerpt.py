"""How much of a real CI log the excerpt keeps, over tests/fixtures/ci-logs-real/.

Each log there is labelled with the lines that explain its failure. A log counts as kept when
every non-blank labelled line is among the excerpt's lines (a line shortened for length counts).
Beside it, the baseline a naive agent would use: the log's last 150 lines. Printed per split
(`dev`, used while writing the excerpt; `holdout`, projects looked at only afterwards) and in
total, with the token reduction, the p95 excerpt size and time; for the logs that come with a
passing run of the same job, also with the difference from it. Last line: one JSON object.
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
import json
import statistics
import time
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.triggers.ci_log import approx_tokens, excerpt, normalize

CORPUS = ROOT / "tests" / "fixtures" / "ci-logs-real"
BASELINE_LINES = 150


def read(name: str) -> str:
    return gzip.decompress((CORPUS / name).read_bytes()).decode()


def labelled(lines: list[str], ranges: list[list[int]]) -> list[int]:
    """0-based indices of the labelled lines that have text."""
    return [i for a, b in ranges for i in range(a - 1, b) if lines[i].strip()]


def measure(name: str, entry: dict[str, Any], passing: str | None) -> dict[str, Any]:
    log = read(f"{name}.log.gz")
    lines = normalize(log)
    wanted = labelled(lines, entry["failure_lines"])
    began = time.perf_counter()
    result = excerpt(log, passing=passing)
    elapsed = time.perf_counter() - began
    tail_from = max(0, len(lines) - BASELINE_LINES)
    kept = set(result.kept)
    return {
        "name": name,
        "split": entry["split"],
        "raw": approx_tokens(log),
        "cut": approx_tokens(result.text),
        "kept": all(i in kept for i in wanted),
        "first_kept": wanted[0] in kept,
        "baseline": approx_tokens("\n".join(lines[tail_from:])),
        "baseline_kept": all(i >= tail_from for i in wanted),
        "baseline_first_kept": wanted[0] >= tail_from,
        "seconds": elapsed,
    }


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    raw = sum(r["raw"] for r in rows)
    return {
        "logs": n,
        "failure_kept_rate": round(sum(r["kept"] for r in rows) / n, 4),
        "first_line_kept_rate": round(sum(r["first_kept"] for r in rows) / n, 4),
        "token_reduction": round(1 - sum(r["cut"] for r in rows) / raw, 4),
        "p95_excerpt_tokens": round(p95([r["cut"] for r in rows])),
        "max_excerpt_tokens": max(r["cut"] for r in rows),
        "p95_excerpt_ms": round(p95([r["seconds"] * 1000 for r in rows]), 1),
        "baseline_failure_kept_rate": round(sum(r["baseline_kept"] for r in rows) / n, 4),
        "baseline_first_line_kept_rate": round(sum(r["baseline_first_kept"] for r in rows) / n, 4),
        "baseline_token_reduction": round(1 - sum(r["baseline"] for r in rows) / raw, 4),
        "baseline_p95_tokens": round(p95([r["baseline"] for r in rows])),
    }


def line(title: str, s: dict[str, Any]) -> str:
    return (
        f"{title:22} {s['logs']:4d} logs  kept {s['failure_kept_rate']:6.1%} "
        f"(first line {s['first_line_kept_rate']:6.1%})  reduction {s['token_reduction']:6.1%}  "
        f"p95 {s['p95_excerpt_tokens']:5d} tok  | last {BASELINE_LINES} lines: kept "
        f"{s['baseline_failure_kept_rate']:6.1%} (first {s['baseline_first_line_kept_rate']:6.1%})"
        f"  reduction {s['baseline_token_reduction']:6.1%}  p95 {s['baseline_p95_tokens']:5d} tok"
    )


def main(argv: list[str]) -> int:
    labels: dict[str, dict[str, Any]] = json.loads((CORPUS / "labels.json").read_text())
    rows = [measure(name, entry, None) for name, entry in sorted(labels.items())]
    verbose = "-v" in argv
    for row in rows:
        if verbose or not row["kept"]:
            mark = "kept" if row["kept"] else "MISSED"
            print(f"{mark:6} {row['split']:7} {row['raw']:7d} -> {row['cut']:5d}  {row['name']}")
    paired = [(n, e) for n, e in sorted(labels.items()) if e.get("passing_log")]
    with_green = [measure(n, e, read(e["passing_log"])) for n, e in paired]
    without = [r for r in rows if labels[r["name"]].get("passing_log")]
    total = summary(rows)
    print()
    for split in ("dev", "holdout"):
        print(line(split, summary([r for r in rows if r["split"] == split])))
    print(line("all", total))
    print(line("with passing log: no", summary(without)))
    print(line("with passing log: yes", summary(with_green)))
    total["dev"] = summary([r for r in rows if r["split"] == "dev"])
    total["holdout"] = summary([r for r in rows if r["split"] == "holdout"])
    total["with_passing_log"] = summary(with_green)
    total["ecosystems"] = len({e["ecosystem"] for e in labels.values()})
    print(json.dumps(total))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
