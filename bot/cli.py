"""The `shipmate` command: parses arguments and hands over. No logic of its own lives here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TypeAlias

from bot.config import ConfigError, Settings, StartupError


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _above_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _port(text: str) -> int:
    value = _positive(text) if text != "0" else 0
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port (1-65535, or 0 for any), not {value}")
    return value


def _version() -> str:
    try:
        return version("shipmate")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _each(parser: argparse.ArgumentParser, flag: str, metavar: str, help: str) -> None:
    """A flag that may be given many times."""
    parser.add_argument(
        flag, action="append", default=[], metavar=metavar, help=f"{help} (repeatable)"
    )


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Bare = Callable[[argparse.Namespace], int]
Configured = Callable[[argparse.Namespace, Settings], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shipmate", description="A self-hosted coding-agent GitHub App."
    )
    parser.add_argument("--version", action="version", version=f"shipmate {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_service_parsers, _sandbox_parser, _image_parser, _run_parsers, _measure_parsers):
        add(sub)
    return parser


def _service_parsers(sub: Subparsers) -> None:
    serve = sub.add_parser("serve", help="web server plus an in-process worker")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=_port, default=3000, help="port to listen on (default 3000)")
    serve.add_argument(
        "--no-worker", action="store_true", help="accept webhooks only; run `shipmate worker`"
    )
    serve.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="web server processes (default: SHIPMATE_WEB_PROCESSES, else one per CPU, at most 4)",
    )

    worker = sub.add_parser("worker", help="a queue worker only (for scale-out)")
    worker.add_argument(
        "--concurrency",
        type=_positive,
        metavar="N",
        help="runs at once (default: SHIPMATE_WORKER_CONCURRENCY, else what the host's "
        "memory and CPUs allow)",
    )

    sub.add_parser("migrate", help="bring the database's schema (ours and the queue's) up to date")
    sub.add_parser(
        "doctor",
        help="print which isolation features this host gives, the sandbox uid, and whether "
        "tasks may run",
    )


def _sandbox_parser(sub: Subparsers) -> None:
    sandbox = sub.add_parser("sandbox", help="the sandbox runtime")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")
    exec_ = sandbox_sub.add_parser("exec", help="run a command in a fresh sandbox")
    exec_.add_argument(
        "--workdir",
        help="mounted read-write at /workspace (run as root: handed to the sandbox uid)",
    )
    _each(exec_, "--allow-host", "HOST[:PORT]", "let the command reach this host (via the proxy)")
    _each(
        exec_,
        "--secret",
        "NAME@HOST[:PORT]",
        "NAME inside holds a placeholder the proxy swaps for the host's $NAME, to HOST only",
    )
    _each(
        exec_,
        "--allow-network",
        "CIDR",
        "also reach this private/loopback range (public addresses need no flag)",
    )
    exec_.add_argument(
        "--timeout",
        type=_above_zero,
        metavar="S",
        help="kill the command and everything it started after S seconds (default 600)",
    )
    exec_.add_argument("--memory", type=_positive, metavar="MiB", help="memory limit in MiB")
    # bubblewrap is the one backend: `docker` was offered but never existed (see the README).
    exec_.add_argument(
        "--backend", choices=["auto", "bwrap"], default="auto", help="sandbox backend (bwrap)"
    )
    exec_.add_argument("--image", metavar="REF", help="run on this OCI image")
    exec_.add_argument(
        "argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]", help="the command to run"
    )


def _image_parser(sub: Subparsers) -> None:
    image = sub.add_parser("image", help="the image cache (environments)")
    image_sub = image.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    pull = image_sub.add_parser("pull", help="pull an image into the cache and unpack it")
    pull.add_argument("reference", metavar="REF", help="e.g. python:3.12-bookworm")
    image_sub.add_parser("ls", help="list cached images, most recently used first")
    prune = image_sub.add_parser("prune", help="evict images past SHIPMATE_IMAGE_CACHE_MIB")
    prune.add_argument("--all", action="store_true", help="evict every image not in use")


def _run_parsers(sub: Subparsers) -> None:
    run = sub.add_parser("run", help="one agent run on a local git repository")
    run.add_argument(
        "--repo", required=True, metavar="PATH", help="the git repository (left untouched)"
    )
    run.add_argument("--brief", required=True, metavar="TEXT", help="what to do, in words")
    run.add_argument("--max-steps", type=_positive, metavar="N", help="at most N model calls")
    run.add_argument("--max-cost", type=_above_zero, metavar="USD", help="stop past USD spent")
    run.add_argument("--timeout", type=_above_zero, metavar="S", help="stop after S seconds")
    run.add_argument(
        "--transcript",
        metavar="FILE",
        help="write the transcript here (default: the data dir's runs/ID.jsonl)",
    )
    _each(run, "--allow-host", "HOST[:PORT]", "let the run reach this host too")
    run.add_argument("--json", action="store_true", help="end stdout with one JSON line")

    runs = sub.add_parser("runs", help="list recent runs, newest first, with their ids")
    runs.add_argument("--repo", metavar="OWNER/NAME", help="one repository")
    runs.add_argument("--status", help="one status (completed, failed, …)")
    runs.add_argument(
        "--limit", type=_positive, default=20, metavar="N", help="at most N runs (default 20)"
    )
    runs.add_argument("--json", action="store_true", help="print one JSON array")

    audit = sub.add_parser("audit", help="print the audit log of a run")
    audit.add_argument(
        "--run", required=True, metavar="ID", help="the run's id (shipmate run and runs print it)"
    )


def _measure_parsers(sub: Subparsers) -> None:
    report = sub.add_parser("report", help="what changes cost, beside an engineer doing them")
    report.add_argument("--repo", metavar="OWNER/NAME", help="one repository")
    report.add_argument("--since", metavar="YYYY-MM-DD", help="default: 30 days ago")
    report.add_argument("--until", metavar="YYYY-MM-DD", help="the last day (default: today)")
    report.add_argument("--json", action="store_true", help="print one JSON object")

    evaluate = sub.add_parser("eval", help="the agent on SWE-bench-style tasks, graded by tests")
    evaluate.add_argument("--tasks", required=True, metavar="FILE.jsonl", help="one task a line")
    evaluate.add_argument(
        "--workers", type=_positive, default=1, metavar="N", help="tasks at once (default 1)"
    )
    evaluate.add_argument("--replay", metavar="DIR", help="answers recorded before")
    evaluate.add_argument(
        "--record", metavar="DIR", help="where answers go (default: the data dir)"
    )
    evaluate.add_argument(
        "--oracle",
        choices=["gold", "empty"],
        help="no model: apply the task's own patch (gold) or nothing (empty)",
    )
    evaluate.add_argument(
        "--deploy",
        action="store_true",
        help="the deploy test: each task a recorded failed deploy (examples/eval/deploy)",
    )
    evaluate.add_argument("--json", action="store_true", help="end stdout with one JSON line")

    demo = sub.add_parser("demo", help="the whole loop against stand-ins (from a source checkout)")
    demo.add_argument("--keep", action="store_true", help="leave it all running until Ctrl-C")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"shipmate: configuration error: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"shipmate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    bare = BARE.get(args.command)
    if bare is not None:
        return bare(args)
    from bot.app import load_settings

    settings = load_settings()
    from bot.logs import configure, settings_secrets

    configure(settings.log_format, settings.log_level, known=settings_secrets(settings))
    return _configured()[args.command](args, settings)


def _sandbox(args: argparse.Namespace) -> int:
    from bot.logs import configure
    from bot.sandbox.command import exec_command

    # The command's own output owns stdout; the sandbox says only what matters, on stderr.
    configure("auto", "warning")
    return exec_command(args)


def _doctor(args: argparse.Namespace) -> int:
    from bot.sandbox.doctor import doctor

    return doctor()


def _demo(args: argparse.Namespace) -> int:
    from bot.demo.command import demo_command

    return demo_command(args)


# No settings read; each imports its own room alone (quick; the demo's stand-ins stay apart).
BARE: dict[str, Bare] = {"sandbox": _sandbox, "doctor": _doctor, "demo": _demo}


def _configured() -> dict[str, Configured]:
    """The other commands: imported with the app, which imports their rooms anyway."""
    from bot.app import run_worker, serve
    from bot.db.audit import print_audit
    from bot.evaluation.session import eval_command
    from bot.jobs.backends import migrate_command
    from bot.runs.listing import runs_command
    from bot.runs.local import run_command
    from bot.runs.report import report_command
    from bot.sandbox.image_command import image_command

    return {
        "serve": lambda args, settings: serve(
            settings,
            host=args.host,
            port=args.port,
            with_worker=not args.no_worker,
            workers=args.workers,
        ),
        "worker": lambda args, settings: run_worker(settings, concurrency=args.concurrency),
        "migrate": lambda args, settings: migrate_command(settings),
        "run": run_command,
        "image": image_command,
        "report": report_command,
        "eval": eval_command,
        "runs": runs_command,
        "audit": lambda args, settings: print_audit(settings, args.run),
    }


if __name__ == "__main__":
    sys.exit(main())
