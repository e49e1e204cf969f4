"""How much of a CI log the excerpt keeps, over the fixtures in tests/fixtures/ci-logs/.

Prints, per log, the raw and excerpt token estimates and whether every line the fixture marks as
the failure survived; then the totals beside the baseline a naive agent would use (the last 200
lines of the log). Last line: one JSON object with `logs`, `token_reduction`, `failure_kept_rate`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.triggers.ci_log import approx_tokens, excerpt, normalize  # noqa: E402

LOGS = ROOT / "tests" / "fixtures" / "ci-logs"


def main() -> int:
    expected: dict[str, list[str]] = json.loads((LOGS / "expected.json").read_text())
    raw_total = cut_total = tail_total = 0
    kept = tail_kept = 0
    print(f"{'log':28} {'raw tok':>8} {'excerpt':>8} {'cut':>6}  failure kept")
    for name, must in sorted(expected.items()):
        log = (LOGS / f"{name}.log").read_text()
        result = excerpt(log)
        raw, cut = approx_tokens(log), approx_tokens(result.text)
        tail = "\n".join(normalize(log)[-200:])
        ok = all(m in result.text for m in must)
        raw_total, cut_total, tail_total = (
            raw_total + raw,
            cut_total + cut,
            tail_total + approx_tokens(tail),
        )
        kept += ok
        tail_kept += all(m in tail for m in must)
        print(f"{name:28} {raw:8d} {cut:8d} {1 - cut / raw:6.1%}  {'yes' if ok else 'NO'}")
    n = len(expected)
    reduction = 1 - cut_total / raw_total
    print()
    print(
        f"excerpt:        {n} logs, {raw_total} -> {cut_total} tokens, reduction {reduction:.1%}, "
        f"failure kept in {kept}/{n}"
    )
    print(
        f"baseline tail:  {n} logs, {raw_total} -> {tail_total} tokens, reduction "
        f"{1 - tail_total / raw_total:.1%}, failure kept in {tail_kept}/{n}"
    )
    print(
        json.dumps(
            {
                "logs": n,
                "token_reduction": round(reduction, 4),
                "failure_kept_rate": round(kept / n, 4),
                "baseline_tail_token_reduction": round(1 - tail_total / raw_total, 4),
                "baseline_tail_failure_kept_rate": round(tail_kept / n, 4),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
