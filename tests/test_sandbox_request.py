"""The request script the namespace holder runs, and the status it reports: pure."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bot.sandbox.request import Capture, parse_status, render


def _run(request: Path, out: Path, err: Path) -> tuple[str, str]:
    """Run `request` as the holder does, with the FIFOs' readers in place as Shipmate has them."""
    os.mkfifo(out)
    os.mkfifo(err)
    readers = [os.open(path, os.O_RDONLY | os.O_NONBLOCK) for path in (out, err)]
    try:
        subprocess.run(["/bin/sh", "-c", '( . "$1" )', "holder", str(request)], check=True)
        return os.read(readers[0], 65536).decode(), os.read(readers[1], 65536).decode()
    finally:
        for fd in readers:
            os.close(fd)


HOSTILE = ["printf", "%s|", "$(touch pwned)", "`id`", "a b", "it's", "line\nbreak", ";", "&&", "*"]


def test_every_argument_reaches_the_command_as_written(tmp_path: Path) -> None:
    out, err, status = tmp_path / "out", tmp_path / "err", tmp_path / "status"
    script = render(
        stdin="/dev/null",
        stdout=str(out),
        stderr=str(err),
        status=str(status),
        steps=["ulimit -f 1000"],
        argv=HOSTILE,
    )
    (tmp_path / "req").write_text(script)
    printed, _ = _run(tmp_path / "req", out, err)
    assert printed == "|".join(HOSTILE[2:]) + "|"
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    reported = parse_status(status.read_bytes())
    assert reported.bwrap_exit == 0 and reported.exit_code is None


def test_a_failing_step_stops_the_request_before_the_command(tmp_path: Path) -> None:
    out, err, status = tmp_path / "out", tmp_path / "err", tmp_path / "status"
    script = render(
        stdin="/dev/null",
        stdout=str(out),
        stderr=str(err),
        status=str(status),
        steps=[f"echo 0 > {tmp_path}/missing/cgroup.procs"],
        argv=["touch", str(tmp_path / "ran")],
    )
    (tmp_path / "req").write_text(script)
    _, complaint = _run(tmp_path / "req", out, err)
    assert not (tmp_path / "ran").exists()
    assert "cgroup.procs" in complaint
    assert parse_status(status.read_bytes()).bwrap_exit not in (None, 0)


def test_status_lines_from_bwrap_and_the_shell() -> None:
    data = (
        b'{ "child-pid": 4242, "pid-namespace": 4026532252 }\n'
        b'{ "exit-code": 3 }\n{"bwrap-exit": 3}\n'
        b"0m0.000000s 0m0.001000s\n1m2.500000s 0m0.250000s\n"
    )
    status = parse_status(data)
    assert (status.child_pid, status.exit_code, status.bwrap_exit) == (4242, 3, 3)
    assert abs(status.cpu_seconds - 62.75) < 1e-9
    assert parse_status(b"garbage\n{not json\n") == parse_status(b"")
    assert parse_status(b"").exit_code is None


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
    script = render(
        stdin="/dev/null",
        stdout=str(tmp_path / "out"),  # never made: Shipmate gave up and removed them
        stderr=str(tmp_path / "err"),
        status=str(tmp_path / "status"),
        steps=[],
        argv=["touch", str(tmp_path / "ran")],
    )
    (tmp_path / "req").write_text(script)
    subprocess.run(["/bin/sh", "-c", '( . "$1" )', "holder", str(tmp_path / "req")], check=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["req"]
