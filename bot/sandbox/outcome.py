"""What one command's run comes to, from what bwrap reported and what the cgroup counted: its exit
code, the CPU time it used, and the notes Shipmate appends to its stderr (timed out, killed from
outside, out of memory, disk full, output cut). Pure: no process is touched here."""

from __future__ import annotations

import signal

from bot.sandbox.base import EXIT_TIMEOUT, ExecResult, SandboxUnavailable
from bot.sandbox.request import Status

DISK_FULL_BYTES = 1024 * 1024


def cpu_used(before: float | None, after: float | None) -> float:
    """The cgroup counts every process of the command; without one there is no count (bwrap
    does not always reap the sandbox's init, so no parent's rusage has it either)."""
    cpu = 0.0
    if before is not None and after is not None:
        cpu = max(0.0, after - before)
    return cpu


def timed_out(
    timeout: float, stdout: bytes, stderr: bytes, cut: int, wall: float, cpu: float
) -> ExecResult:
    note = f"\n[shipmate: killed after {timeout:g} s: the command timed out]\n"
    return ExecResult(EXIT_TIMEOUT, stdout, stderr + note.encode(), True, cut, wall, cpu)


def exit_code(status: Status, stderr: bytes, oom: bool) -> tuple[int, bytes]:
    """The command's exit code, and its stderr with a note when it was killed from outside;
    SandboxUnavailable when the sandbox itself never started."""
    code = status.exit_code
    if code is None:
        # bwrap never reported the command's exit: it could not run it, or it was killed.
        not_run = exec_failure(stderr)
        if not_run is not None:
            code = not_run
        elif oom or status.child_pid is not None:
            # The OOM killer took bwrap itself, or the sandbox had started and was killed
            # from outside (the holder going down, an operator): killed, not refused.
            code = 128 + signal.SIGKILL
            if not oom:
                stderr += b"\n[shipmate: the sandbox was killed from outside]\n"
        else:
            raise SandboxUnavailable(start_failure(stderr))
    return code, stderr


def finished(
    code: int,
    stdout: bytes,
    stderr: bytes,
    *,
    oom: bool,
    disk_free: int | None,
    workspace_mib: int | None,
    cut: int,
    wall: float,
    cpu: float,
) -> ExecResult:
    """A command that ended by itself (or was killed from outside), with the notes on why."""
    if oom:
        stderr += b"\n[shipmate: the sandbox ran out of memory]\n"
    if disk_free is not None and disk_free < DISK_FULL_BYTES:
        stderr += (
            f"\n[shipmate: the task's disk is full: changes to /workspace, /tmp and home "
            f"share {workspace_mib} MiB]\n"
        ).encode()
    if cut:
        stderr += f"\n[shipmate: output cut: {cut} bytes were not kept]\n".encode()
    return ExecResult(code, stdout, stderr, False, cut, wall, cpu)


def exec_failure(stderr: bytes) -> int | None:
    """The shell's exit code when bwrap set the sandbox up but could not run the command (127:
    not found, 126: not executable), else None."""
    for line in stderr.decode("utf-8", "replace").splitlines():
        if line.startswith("bwrap: execvp "):
            return 127 if line.endswith("No such file or directory") else 126
    return None


def start_failure(stderr: bytes, code: int | None = None) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    reason = next((line for line in reversed(lines) if line), "no message")
    return f"the sandbox did not start{f' (exit {code})' if code is not None else ''}: {reason}"
