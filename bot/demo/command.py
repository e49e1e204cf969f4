"""`shipmate demo [--keep]`: check what the demo needs, build the world, play the steps."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import tempfile
import threading
from pathlib import Path

FROM_SOURCE = (
    "shipmate demo: the GitHub and model stand-ins (standins/) are not importable here. "
    "They live in Shipmate's source checkout and are not shipped in the package: run "
    "`shipmate demo` from a checkout (`bash scripts/setup dev`, then `.venv/bin/shipmate demo`)."
)


def missing() -> str | None:
    """Why the demo cannot run on this machine, in one sentence, or None."""
    try:
        from standins.github import FIXTURES
    except ImportError:
        return FROM_SOURCE

    if not FIXTURES.is_dir():
        return (
            f"shipmate demo: the recorded webhook payloads are not at {FIXTURES} "
            "(the shared fixtures beside the checkout); the emitter builds every delivery on them."
        )
    if shutil.which("bwrap") is None:
        return "shipmate demo: bubblewrap (`bwrap`) is not installed; runs need the sandbox."
    if shutil.which("git") is None:
        return "shipmate demo: git is not installed."
    return None


def demo_command(args: argparse.Namespace) -> int:
    problem = missing()
    if problem:
        print(problem, flush=True)
        return 2
    from bot.demo.play import play

    with tempfile.TemporaryDirectory(prefix="shipmate-demo-") as folder:
        return play(Path(folder), keep=args.keep, wait=_wait_for_interrupt)


def _wait_for_interrupt() -> None:
    """Until Ctrl-C, or a SIGTERM (a background demo: its shell ignores SIGINT for it)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda number, frame: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
