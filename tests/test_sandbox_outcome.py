"""What a command's run comes to, from what bwrap reported and the cgroup counted: pure."""

from __future__ import annotations

import pytest

from bot.sandbox import outcome
from bot.sandbox.base import EXIT_TIMEOUT, SandboxUnavailable
from bot.sandbox.request import Status


def test_a_reported_exit_code_is_the_commands() -> None:
    assert outcome.exit_code(Status(pid=5, child_pid=6, exit_code=3), b"err", False) == (3, b"err")


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("bwrap: execvp nope: No such file or directory", 127),
        ("bwrap: execvp ./x: Permission denied", 126),
    ],
)
def test_a_command_bwrap_could_not_run_is_the_shells_code(line: str, code: int) -> None:
    assert outcome.exit_code(Status(pid=5), line.encode(), False) == (code, line.encode())


def test_a_sandbox_killed_from_outside_is_137_with_a_note() -> None:
    code, stderr = outcome.exit_code(Status(pid=5, child_pid=6), b"", False)
    assert code == 137 and b"killed from outside" in stderr
    # The OOM killer's kill says so elsewhere (`finished`), not as a kill from outside.
    assert outcome.exit_code(Status(pid=5), b"", True) == (137, b"")


def test_a_sandbox_that_never_started_is_unavailable_with_bwraps_last_line() -> None:
    with pytest.raises(SandboxUnavailable, match=r"did not start: bwrap: bad mount$"):
        outcome.exit_code(Status(pid=5), b"first\nbwrap: bad mount\n\n", False)
    assert outcome.start_failure(b"", 1) == "the sandbox did not start (exit 1): no message"


def test_the_notes_say_why_in_order() -> None:
    result = outcome.finished(
        1, b"out", b"err", oom=True, disk_free=0, workspace_mib=64, cut=9, wall=2.0, cpu=1.0
    )
    notes = result.stderr.decode().split("\n[shipmate: ")
    assert notes[0] == "err"
    assert [note.split(":")[0].split(" ")[0] for note in notes[1:]] == ["the", "the", "output"]
    assert "out of memory" in notes[1] and "share 64 MiB" in notes[2] and "9 bytes" in notes[3]
    assert (result.exit_code, result.cut_bytes, result.timed_out) == (1, 9, False)


def test_a_disk_with_room_and_an_unknown_disk_get_no_note() -> None:
    for free in (None, outcome.DISK_FULL_BYTES):
        result = outcome.finished(
            1, b"", b"", oom=False, disk_free=free, workspace_mib=64, cut=0, wall=0, cpu=0
        )
        assert result.stderr == b""


def test_a_timeout_keeps_the_output_and_says_after_how_long() -> None:
    result = outcome.timed_out(1.5, b"out", b"err", 0, 1.6, 0.1)
    assert result.exit_code == EXIT_TIMEOUT and result.timed_out and result.stdout == b"out"
    assert result.stderr == b"err\n[shipmate: killed after 1.5 s: the command timed out]\n"


def test_cpu_time_is_the_cgroups_difference_or_nothing() -> None:
    assert outcome.cpu_used(1.0, 3.5) == 2.5
    assert outcome.cpu_used(None, 3.5) == outcome.cpu_used(1.0, None) == 0.0
    assert outcome.cpu_used(3.0, 1.0) == 0.0
