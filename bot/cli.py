"""The `shipmate` command: parses arguments and hands over. No logic of its own lives here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bot.config import ConfigError, StartupError


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
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("shipmate")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _each(parser: argparse.ArgumentParser, flag: str, metavar: str, help: str) -> None:
    """A flag that may be given many times."""
    parser.add_argument(
        flag, action="append", default=[], metavar=metavar, help=f"{help} (repeatable)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shipmate", description="A self-hosted coding-agent GitHub App."
    )
    parser.add_argument("--version", action="version", version=f"shipmate {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
        default=None,
        metavar="N",
        help="web server processes (default: SHIPMATE_WEB_PROCESSES, else one per CPU, at most 4)",
    )

    worker = sub.add_parser("worker", help="a queue worker only (for scale-out)")
    worker.add_argument(
        "--concurrency",
        type=_positive,
        default=None,
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

    sandbox = sub.add_parser("sandbox", help="the sandbox runtime")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")
    exec_ = sandbox_sub.add_parser("exec", help="run a command in a fresh sandbox")
    exec_.add_argument(
        "--workdir",
        default=None,
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
        default=None,
        metavar="S",
        help="kill the command and everything it started after S seconds (default 600)",
    )
    exec_.add_argument(
        "--memory", type=_positive, default=None, metavar="MiB", help="memory limit in MiB"
    )
    # bubblewrap is the one backend: `docker` was offered but never existed (see the README).
    exec_.add_argument(
        "--backend", choices=["auto", "bwrap"], default="auto", help="sandbox backend (bwrap)"
    )
    exec_.add_argument("--image", default=None, metavar="REF", help="run on this OCI image")
    exec_.add_argument(
        "argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]", help="the command to run"
    )
    _image_parser(sub)

    run = sub.add_parser("run", help="one agent run on a local git repository")
    run.add_argument(
        "--repo", required=True, metavar="PATH", help="the git repository (left untouched)"
    )
    run.add_argument("--brief", required=True, metavar="TEXT", help="what to do, in words")
    run.add_argument(
        "--max-steps", type=_positive, default=None, metavar="N", help="at most N model calls"
    )
    run.add_argument(
        "--max-cost", type=_above_zero, default=None, metavar="USD", help="stop past USD spent"
    )
    run.add_argument(
        "--timeout", type=_above_zero, default=None, metavar="S", help="stop after S seconds"
    )
    run.add_argument(
        "--transcript",
        default=None,
        metavar="FILE",
        help="write the transcript here (default: the data dir's runs/ID.jsonl)",
    )
    _each(run, "--allow-host", "HOST[:PORT]", "let the run reach this host too")
    run.add_argument("--json", action="store_true", help="end stdout with one JSON line")

    runs = sub.add_parser("runs", help="list recent runs, newest first, with their ids")
    runs.add_argument("--repo", default=None, metavar="OWNER/NAME", help="one repository")
    runs.add_argument("--status", default=None, help="one status (completed, failed, …)")
    runs.add_argument(
        "--limit", type=_positive, default=20, metavar="N", help="at most N runs (default 20)"
    )
    runs.add_argument("--json", action="store_true", help="print one JSON array")

    audit = sub.add_parser("audit", help="print the audit log of a run")
    audit.add_argument(
        "--run", required=True, metavar="ID", help="the run's id (shipmate run and runs print it)"
    )

    report = sub.add_parser("report", help="what changes cost, beside an engineer doing them")
    report.add_argument("--repo", default=None, metavar="OWNER/NAME", help="one repository")
    report.add_argument("--since", default=None, metavar="YYYY-MM-DD", help="default: 30 days ago")
    report.add_argument(
        "--until", default=None, metavar="YYYY-MM-DD", help="the last day (default: today)"
    )
    report.add_argument("--json", action="store_true", help="print one JSON object")

    evaluate = sub.add_parser("eval", help="the agent on SWE-bench-style tasks, graded by tests")
    evaluate.add_argument("--tasks", required=True, metavar="FILE.jsonl", help="one task a line")
    evaluate.add_argument(
        "--workers", type=_positive, default=1, metavar="N", help="tasks at once (default 1)"
    )
    evaluate.add_argument("--replay", default=None, metavar="DIR", help="answers recorded before")
    evaluate.add_argument(
        "--record", default=None, metavar="DIR", help="where answers go (default: the data dir)"
    )
    evaluate.add_argument(
        "--oracle",
        choices=["gold", "empty"],
        default=None,
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
    return parser


def _image_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    image = sub.add_parser("image", help="the image cache (environments)")
    image_sub = image.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    pull = image_sub.add_parser("pull", help="pull an image into the cache and unpack it")
    pull.add_argument("reference", metavar="REF", help="e.g. python:3.12-bookworm")
    image_sub.add_parser("ls", help="list cached images, most recently used first")
    prune = image_sub.add_parser("prune", help="evict images past SHIPMATE_IMAGE_CACHE_MIB")
    prune.add_argument("--all", action="store_true", help="evict every image not in use")


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
    if args.command == "sandbox":
        from bot.logs import configure
        from bot.sandbox.command import exec_command

        # The command's own output owns stdout; the sandbox says only what matters, on stderr.
        configure("auto", "warning")
        return exec_command(args)
    if args.command == "doctor":
        from bot.sandbox.doctor import doctor

        return doctor()
    if args.command == "demo":
        from bot.demo.command import demo_command

        return demo_command(args)
    from bot.app import load_settings

    settings = load_settings()
    from bot.logs import configure, settings_secrets

    configure(settings.log_format, settings.log_level, known=settings_secrets(settings))
    if args.command in ("serve", "worker"):
        from bot.sandbox.identity import announce

        announce()
    if args.command == "serve":
        from bot.app import serve

        return serve(
            settings,
            host=args.host,
            port=args.port,
            with_worker=not args.no_worker,
            workers=args.workers,
        )
    if args.command == "worker":
        from bot.app import run_worker

        if args.concurrency is not None:
            settings = settings.model_copy(update={"worker_concurrency": args.concurrency})
        return run_worker(settings)
    if args.command == "migrate":
        from bot.jobs.backends import migrate_command

        return migrate_command(settings)
    if args.command == "run":
        from bot.runs.local import run_command

        return run_command(args, settings)
    if args.command == "image":
        from bot.sandbox.image_command import image_command

        return image_command(args, settings)
    if args.command == "report":
        from bot.runs.report import report_command

        return report_command(args, settings)
    if args.command == "eval":
        from bot.evaluation.session import eval_command

        return eval_command(args, settings)
    if args.command == "runs":
        from bot.runs.listing import runs_command

        return runs_command(args, settings)
    if args.command == "audit":
        from bot.db.audit import print_audit

        return print_audit(settings, args.run)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
