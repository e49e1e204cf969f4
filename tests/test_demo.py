"""`shipmate demo`: the whole loop, run as a user runs it (a subprocess), in bounded time."""

from __future__ import annotations

import json
import queue
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")


@needs_bwrap
@pytest.mark.e2e
def test_the_demo_plays_the_whole_loop_and_names_the_pull_requests() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert re.search(r"dashboard:  http://127\.0\.0\.1:\d+/dashboard/", out)
    assert re.search(r"admin token: \S{20,}", out)
    for step in (
        "alice opened issue #1",
        "Shipmate opened pull request #2",
        "CI failed; Shipmate pushed repair commit",
        "Shipmate pushed revision",
        "Shipmate opened follow-up #3",
    ):
        assert step in out
    summary = out[out.index("Summary:") :]
    assert re.search(r'pull request #2 "Fix #1: add\(\) subtracts": http://\S+/pull/2', summary)
    assert re.search(r'follow-up #3 "Fix the failed production deploy of #2": \S+/pull/3', summary)
    # The fix, the repair and the revision: three commits on the first pull request.
    assert re.search(r"commits Shipmate pushed to #2: \w{7}, \w{7}, \w{7}\n", summary)
    assert "Traceback" not in done.stderr


BLOCK_STANDINS = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "standins" or name.startswith("standins."):
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, Block())
from bot.cli import main
sys.exit(main(["demo"]))
"""


def test_without_the_stand_ins_the_demo_says_to_run_it_from_a_checkout() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_STANDINS], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "run `shipmate demo` from a checkout" in done.stdout and "Traceback" not in done.stderr


@needs_bwrap
@pytest.mark.e2e
def test_the_kept_demo_names_its_data_where_report_finds_the_loops_costs() -> None:
    """With --keep the demo says where its data is; `shipmate report` there has the loop as
    GitHub's webhooks told it: two pull requests opened, one merged after a review, the CI
    job's minutes. A SIGTERM stops the demo as Ctrl-C does."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "demo", "--keep"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in demo.stdout or ()]).start()
    try:
        data_dir = ""
        while not data_dir:
            line = lines.get(timeout=240)
            assert "✗" not in line, line
            found = re.search(r"What it all cost: SHIPMATE_DATA_DIR=(\S+) shipmate report", line)
            data_dir = found.group(1) if found else ""
        report = subprocess.run(
            [sys.executable, "-m", "bot.cli", "report", "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "SHIPMATE_DATA_DIR": data_dir},
        )
        figures = json.loads(report.stdout)
        assert (figures["runs"], figures["prs_opened"], figures["prs_merged"]) == (4, 2, 1)
        assert figures["ci_minutes"] == pytest.approx(160 / 60, abs=0.01)
        widgets = figures["repos"]["octo/widgets"]
        assert widgets["review"]["rounds_per_change"] == 0.5  # one review over two changes
        assert widgets["review"]["human_comments_per_change"] == 0.5
        assert widgets["review"]["median_hours_to_first_review"] is not None
        assert widgets["ratio"] is not None and widgets["per_merged_change_usd"]["review"] > 0
    finally:
        demo.terminate()
        assert demo.wait(timeout=60) == 0
    assert not Path(data_dir).exists()
