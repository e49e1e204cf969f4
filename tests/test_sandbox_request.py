"""The request script the namespace holder runs, and the status it reports: pure."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bot.sandbox.request import Capture, parse_status, render


def _write(folder: Path, argv: list[str]) -> Path:
    """A request as Shipmate writes it, with FIFOs and a status file in `folder`."""
    request = folder / "req"
    request.write_text(
        render(
            stdin="/dev/null",
            stdout=str(folder / "out"),
            stderr=str(folder / "err"),
            status=str(folder / "status"),
            argv=argv,
        )
    )
    return request


def _run(request: Path, *, fifos: bool = True) -> tuple[str, str]:
    """Run `request` as the holder does, with the FIFOs' readers in place as Shipmate has them
    (or, with `fifos=False`, after Shipmate gave up on it and removed them)."""
    paths = [request.parent / "out", request.parent / "err"]
    readers = []
    if fifos:
        for path in paths:
            os.mkfifo(path)
            readers.append(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    try:
        subprocess.run(["/bin/sh", "-c", '( . "$1" )', "holder", str(request)], check=False)
        if not readers:
            return "", ""
        return os.read(readers[0], 65536).decode(), os.read(readers[1], 65536).decode()
    finally:
        for fd in readers:
            os.close(fd)


HOSTILE = ["printf", "%s|", "$(touch pwned)", "`id`", "a b", "it's", "line\nbreak", ";", "&&", "*"]


def test_every_argument_reaches_the_command_as_written(tmp_path: Path) -> None:
    printed, _ = _run(_write(tmp_path, HOSTILE))
    assert printed == "|".join(HOSTILE[2:]) + "|"
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    reported = parse_status((tmp_path / "status").read_bytes())
    assert reported.pid is not None and reported.pid > 1  # printf ran in the subshell's place
    assert reported.exit_code is None  # bwrap's line; printf wrote none


def test_a_missing_program_ends_the_request_with_a_message(tmp_path: Path) -> None:
    _, complaint = _run(_write(tmp_path, ["/no/such/bwrap", "--", "true"]))
    assert "/no/such/bwrap" in complaint and "not found" in complaint
    status = parse_status((tmp_path / "status").read_bytes())
    assert status.pid is not None and status.child_pid is None and status.exit_code is None


def test_status_lines_from_the_subshell_and_bwrap() -> None:
    data = (
        b'{"pid": 4240}\n{ "child-pid": 4242, "pid-namespace": 4026532252 }\n{ "exit-code": 3 }\n'
    )
    status = parse_status(data)
    assert (status.pid, status.child_pid, status.exit_code) == (4240, 4242, 3)
    assert parse_status(b"garbage\n{not json\n") == parse_status(b"")
    assert parse_status(b"").exit_code is None and parse_status(b"").pid is None


def test_capture_keeps_head_and_tail() -> None:
    capture = Capture(4)
    for chunk in (b"abc", b"defgh", b"ij"):
        capture.feed(chunk)
    kept, cut = capture.result()
    assert cut == 2 and kept.startswith(b"abcd") and kept.endswith(b"ghij")
    small = Capture(10)
    small.feed(b"hello")
    assert small.result() == (b"hello", 0)


def test_a_request_whose_fifos_are_gone_runs_nothing(tmp_path: Path) -> None:
    _run(_write(tmp_path, ["touch", str(tmp_path / "ran")]), fifos=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["req"]
