"""The `shipmate` command as a new user meets it: help for every option, `--version`, limits
that cannot be zero or negative, and `shipmate runs`."""

from __future__ import annotations

import argparse
import json
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from bot import cli
from bot.cli import _parser, main
from bot.config import Settings
from bot.db.store import Store
from bot.runs.listing import runs_command


def _parsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """The parser and each of its subcommands' parsers, by their `shipmate …` names."""
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _parsers(child)
    return found


def test_every_command_and_option_has_help() -> None:
    missing = []
    for prog, parser in _parsers(_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{prog} {c.dest}" for c in action._choices_actions if not c.help]
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{prog} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_every_command_has_one_handler() -> None:
    """Dispatch goes through the two tables: each subcommand is in exactly one of them, and
    only the sandbox, doctor and demo start without settings."""
    (commands,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    bare, configured = set(cli.BARE), set(cli._configured())
    assert bare.isdisjoint(configured)
    assert bare | configured == set(commands.choices)
    assert bare == {"sandbox", "doctor", "demo"}


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--version"])
    assert raised.value.code == 0
    assert capsys.readouterr().out == f"shipmate {version('shipmate')}\n"


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--max-steps", "0"],
        ["run", "--max-steps", "-2"],
        ["run", "--max-steps", "1.5"],
        ["run", "--max-cost", "0"],
        ["run", "--max-cost", "-1"],
        ["run", "--max-cost", "nan"],
        ["run", "--timeout", "0"],
        ["run", "--timeout", "-30"],
        ["sandbox", "exec", "--timeout", "0"],
        ["sandbox", "exec", "--memory", "-1"],
        ["serve", "--port", "70000"],
    ],
    ids=" ".join,
)
def test_limits_that_are_zero_or_negative_are_refused(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    if args[0] == "run":
        args = [*args, "--repo", ".", "--brief", "x"]
    with pytest.raises(SystemExit) as raised:
        main(args)
    assert raised.value.code == 2
    flag = next(a for a in args if a.startswith("--"))
    assert f"argument {flag}: must be" in capsys.readouterr().err


def test_runs_lists_the_recent_runs_newest_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings.load(data_dir=tmp_path)

    def shipmate(*args: str) -> int:
        # The command's own code, without main's process-wide logging set-up.
        return runs_command(_parser().parse_args(args), settings)

    assert shipmate("runs") == 0
    assert capsys.readouterr().out == "No runs yet.\n"
    store = Store(f"sqlite:///{tmp_path / 'shipmate.db'}")
    store.migrate()
    now = time.time()
    store.record_run(
        "aaa111", repo="octo/widgets", number=7, status="completed", created_at=now - 60
    )
    store.update_run("aaa111", steps=4, cost_usd=0.125)
    store.record_run("bbb222", repo="/home/me/code", kind="run", status="failed", created_at=now)
    store.dispose()
    assert shipmate("runs") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "RUN",
        "STARTED",
        "(UTC)",
        "REPOSITORY",
        "TRIGGER",
        "STATUS",
        "STEPS",
        "COST",
    ]
    assert lines[1].split()[0] == "bbb222" and "/home/me/code" in lines[1]
    assert lines[2].split()[0] == "aaa111" and "octo/widgets#7" in lines[2]
    assert lines[2].split()[-3:] == ["completed", "4", "$0.1250"]
    assert shipmate("runs", "--repo", "octo/widgets", "--json") == 0
    (only,) = json.loads(capsys.readouterr().out)
    assert only["id"] == "aaa111" and only["status"] == "completed" and only["number"] == 7
    assert shipmate("runs", "--status", "failed", "--limit", "1") == 0
    assert "bbb222" in capsys.readouterr().out
