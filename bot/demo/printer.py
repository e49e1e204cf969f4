"""What `shipmate demo` prints: where things are, each step as it happens, and the summary.
Lines go to stdout as they are written (flushed), so a pipe sees them at once."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from bot.demo.steps import Story


class Printer:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.started = time.monotonic()

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def addresses(self, shipmate: str, github: str, model: str, token: str) -> None:
        self.line("Shipmate demo: the GitHub and model stand-ins, and Shipmate, on loopback.")
        self.line(f"  dashboard:  {shipmate}/dashboard/  (sign in with the admin token)")
        self.line(f"  admin token: {token}")
        self.line(f"  Shipmate:   {shipmate}  (webhooks at {shipmate}/api/github/webhooks)")
        self.line(f"  GitHub stand-in: {github}   model stand-in: {model}")
        self.line()

    def step(self, number: int, total: int, title: str) -> None:
        self.line(f"[{number}/{total}] {title} …")

    def done(self, said: str) -> None:
        self.line(f"      ✓ {said}  ({time.monotonic() - self.started:.0f}s)")

    def failed(self, reason: str) -> None:
        self.line(f"      ✗ {reason}")

    def summary(self, story: Story, costs: str) -> None:
        self.line()
        self.line("Summary: the whole loop ran.")
        for label, pull in (("pull request", story.pull), ("follow-up", story.follow_up)):
            if pull:
                self.line(f'  {label} #{pull["number"]} "{pull["title"]}": {pull["html_url"]}')
        shas = ", ".join(sha[:7] for sha in story.commits)
        self.line(f"  commits Shipmate pushed to #{story.pull.get('number')}: {shas}")
        self.line(f"  {costs}")

    def keeping(self, webhook_url: str, secret: str, github: str, data_dir: Path) -> None:
        self.line()
        self.line("Everything keeps running (--keep); Ctrl-C stops it. To drive it by hand:")
        self.line(
            f"  python -m standins.emit comment --to {webhook_url} --secret {secret} "
            f"--repo octo/widgets --issue 1 --body '/shipmate plan'"
        )
        self.line(f"  (the GitHub stand-in's REST API is at {github})")
        self.line(f"What it all cost: SHIPMATE_DATA_DIR={data_dir} shipmate report")
