"""Isolation properties of the bubblewrap sandbox, with real bwrap and real processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sandbox import open_sandbox
from bot.sandbox.base import EXIT_TIMEOUT, Limits, SandboxSpec, SandboxUnavailable
from bot.sandbox.bwrap import BwrapSandbox

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
    pytest.mark.anyio,
]


def _spec(tmp_path: Path, **limits: object) -> SandboxSpec:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    return SandboxSpec(workspace=workspace, limits=Limits(**limits))  # type: ignore[arg-type]


def _pids_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def test_host_files_and_environment_are_invisible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_ONLY_SECRET", "do-not-leak")
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "mine.txt").write_text("visible")
    async with open_sandbox(_spec(tmp_path)) as sandbox:
        result = await sandbox.exec(
            [
                "bash",
                "-c",
                "env; ls -a /root /home 2>&1; cat mine.txt; pwd; cat /etc/gitconfig /etc/shadow 2>&1; ls /var/run/docker.sock 2>&1; touch /etc/new /etc/passwd 2>&1",
            ]
        )
    out = result.stdout.decode() + result.stderr.decode()
    assert "do-not-leak" not in out and "HOST_ONLY_SECRET" not in out
    assert "SSH_AUTH_SOCK" not in out
    assert "cannot access '/root'" in out
    assert "visible" in out and "/workspace" in out
    assert "gitconfig: No such file" in out and "shadow: No such file" in out
    assert "docker.sock" in out and "No such file" in out
    assert "'/etc/new': Read-only file system" in out
    assert "'/etc/passwd': Read-only file system" in out


async def test_no_network_without_the_proxy(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        async with open_sandbox(_spec(tmp_path)) as sandbox:
            result = await sandbox.exec(
                [
                    "python3",
                    "-c",
                    f"import socket; socket.create_connection(('127.0.0.1', {port}), 2)",
                ]
            )
            interfaces = await sandbox.exec(["cat", "/proc/net/dev"])
    finally:
        listener.close()
    assert result.exit_code != 0 and b"Connection refused" in result.stderr
    assert b"eth" not in interfaces.stdout and b"lo:" in interfaces.stdout


FETCH = """
import urllib.error, urllib.request
try:
    urllib.request.urlopen("http://example.com/", timeout=20)
except urllib.error.HTTPError as exc:
    print(exc.code, exc.read().decode())
"""


async def test_a_task_allowed_no_host_still_gets_the_proxys_readable_refusal(
    tmp_path: Path,
) -> None:
    """The proxy variables are set in every sandbox: a request to a host the task may not
    reach gets the proxy's 403 saying how to allow it, not a bare name-resolution error."""
    async with open_sandbox(_spec(tmp_path)) as sandbox:  # as a task from GitHub
        env = await sandbox.exec(["sh", "-c", "echo $HTTP_PROXY $https_proxy"])
        result = await sandbox.exec(["python3", "-c", FETCH])
    assert env.stdout == b"http://127.0.0.1:3128 http://127.0.0.1:3128\n"
    assert result.stdout.decode().strip() == (
        "403 shipmate egress: example.com:80 is not on this task's allowlist; a maintainer can "
        "add it to network.allow in .github/shipmate.yml on the default branch"
    )


def test_under_sandbox_exec_the_refusal_names_the_flag(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "sandbox", "exec", "--", "python3", "-c", FETCH],
        cwd=ROOT,
        env={**os.environ, "SHIPMATE_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == (
        "403 shipmate egress: example.com:80 is not on this task's allowlist; allow it with "
        "--allow-host example.com:80"
    ), done.stderr


async def test_id_shows_the_sandboxs_own_user_not_the_hosts_users(tmp_path: Path) -> None:
    async with open_sandbox(_spec(tmp_path)) as sandbox:
        result = await sandbox.exec(["sh", "-c", "id; whoami; cut -d: -f1 /etc/passwd /etc/group"])
    lines = result.stdout.decode().splitlines()
    assert lines[:2] == ["uid=1000(sandbox) gid=1000(sandbox) groups=1000(sandbox)", "sandbox"]
    assert lines[2:] == ["root", "sandbox", "nobody", "root", "sandbox", "nogroup"]


async def test_timeout_kills_a_tree_that_forks_and_detaches(tmp_path: Path) -> None:
    marker = f"shipmate-marker-{uuid.uuid4().hex}"
    script = f"(setsid bash -c 'exec -a {marker} sleep 300' &); (nohup bash -c 'exec -a {marker} sleep 300' &); exec -a {marker} sleep 300"
    async with open_sandbox(_spec(tmp_path, timeout_seconds=1.0)) as sandbox:
        started = time.monotonic()
        result = await sandbox.exec(["bash", "-c", script])
        assert time.monotonic() - started < 10
    assert result.exit_code == EXIT_TIMEOUT and result.timed_out
    assert b"timed out" in result.stderr
    deadline = time.monotonic() + 5
    while _pids_with(marker):
        assert time.monotonic() < deadline, f"survivors: {_pids_with(marker)}"
        await asyncio.sleep(0.05)


async def test_memory_limit(tmp_path: Path) -> None:
    async with open_sandbox(_spec(tmp_path, memory_mib=128)) as sandbox:
        result = await sandbox.exec(
            ["python3", "-c", "x = bytearray(400 * 1024 * 1024); print('ok')"]
        )
        kind = sandbox._cgroup().kind
        after = await sandbox.exec(["python3", "-c", "x = bytearray(8 * 1024 * 1024); print('ok')"])
    assert result.exit_code != 0 and b"ok" not in result.stdout
    if kind != "none":  # the cgroup's OOM killer (v2 memory.events, v1 memory.oom_control)
        assert result.exit_code == 137 and b"the sandbox ran out of memory" in result.stderr
    # The OOM kill was that command's: the next one, within its limit, is not blamed for it.
    assert after.exit_code == 0 and after.stdout == b"ok\n" and b"memory" not in after.stderr


async def test_a_timeout_keeps_what_the_command_wrote_before(tmp_path: Path) -> None:
    script = (
        "echo started; echo warming up >&2; head -c 50000 /dev/zero | tr '\\0' b; exec sleep 30"
    )
    async with open_sandbox(_spec(tmp_path, timeout_seconds=1.0, output_bytes=10_000)) as sandbox:
        result = await sandbox.exec(["sh", "-c", script])
    assert result.timed_out and result.exit_code == EXIT_TIMEOUT
    assert result.stdout.startswith(b"started\n") and result.stdout.endswith(b"b" * 100)
    assert result.cut_bytes == 50_008 - 10_000 and len(result.stdout) < 11_000
    assert result.stderr.startswith(b"warming up\n")
    assert result.stderr.endswith(b"[shipmate: killed after 1 s: the command timed out]\n")


def test_own_cgroup_is_read_for_each_hierarchy() -> None:
    from bot.sandbox.limits import own_path

    v1 = "9:name=systemd:/\n8:pids:/svc\n4:memory:/process_api/abc\n2:cpu,cpuacct:/x\n0::/\n"
    assert own_path("memory", v1) == "/process_api/abc" and own_path("pids", v1) == "/svc"
    assert own_path("cpuacct", v1) == "/x" and own_path("blkio", v1) == "/"
    v2 = "0::/system.slice/shipmate.service\n"
    assert own_path("", v2) == "/system.slice/shipmate.service"


async def test_process_limit(tmp_path: Path) -> None:
    async with open_sandbox(_spec(tmp_path, max_processes=20)) as sandbox:
        result = await sandbox.exec(
            [
                "python3",
                "-c",
                "import os, time\nn = 0\ntry:\n    for _ in range(100):\n        if os.fork() == 0:\n            time.sleep(2); os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('refused after', n, e.errno)\n",
            ]
        )
    assert b"refused after" in result.stdout
    assert int(result.stdout.split()[2]) < 20


def _host_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


async def test_a_task_writes_at_most_its_disk_cap_in_total(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "kept.txt").write_text("cached")
    spec = SandboxSpec(
        workspace=tree, overlay_lower=tree, limits=Limits(workspace_mib=20, output_bytes=4000)
    )
    write = "head -c 8M /dev/zero > {} && echo wrote {}"
    async with open_sandbox(spec) as sandbox:
        small = await sandbox.exec(
            ["sh", "-c", "; ".join(write.format(p, p) for p in ("/tmp/a", "~/b"))]
        )
        full = await sandbox.exec(["sh", "-c", write.format("/workspace/c", "c")])
        disk = await sandbox.exec(["df", "-m", "/tmp", "/home/sandbox", "/workspace"])
        during = _host_bytes(tmp_path)
        freed = await sandbox.exec(["sh", "-c", "rm /tmp/a && " + write.format("big", "big")])
    assert small.exit_code == 0 and small.stdout.count(b"wrote") == 2, small.stderr
    assert full.exit_code != 0 and b"No space left on device" in full.stderr
    assert b"the task's disk is full" in full.stderr and b"20 MiB" in full.stderr
    assert freed.exit_code == 0, freed.stderr  # space is shared, and given back on delete
    assert disk.stdout.decode().count(" 20 ") >= 3  # /tmp, home and /workspace: one 20 MiB disk
    assert during < 1024 * 1024  # nothing of it on the host's disk
    assert sorted(p.name for p in tree.iterdir()) == ["kept.txt"]


FORK_BOMB = (
    "import os, time\nn = 0\ntry:\n    for _ in range(100):\n        if os.fork() == 0:\n"
    "            time.sleep(2); os._exit(0)\n        n += 1\nexcept OSError as e:\n"
    "    print('refused after', n, e.errno)\n"
)
WITHOUT_CGROUPS = f"""
import asyncio, tempfile
from collections.abc import Iterator
from pathlib import Path
from bot.sandbox.base import Limits, SandboxSpec
from bot.sandbox.bwrap import BwrapSandbox

async def main():
    spec = SandboxSpec(workspace=Path(tempfile.mkdtemp()), limits=Limits(max_processes=20))
    async with BwrapSandbox(spec, cgroup_root=Path("/nonexistent")) as sandbox:
        result = await sandbox.exec(["python3", "-c", {FORK_BOMB!r}])
        print(sandbox._cgroup().kind, result.stdout.decode(), result.stderr.decode())

asyncio.run(main())
"""


def _unprivileged_python() -> list[str]:
    """A Python running this checkout as a user the kernel holds to RLIMIT_NPROC (root is
    exempt from it): ourselves, or nobody through the system Python when we are root."""
    if os.geteuid() != 0:
        return [sys.executable]
    system = Path("/usr/bin/python3")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    probe = subprocess.run([system, "--version"], capture_output=True, text=True)
    if shutil.which("setpriv") is None or version not in probe.stdout:
        pytest.skip(f"needs setpriv and a system Python {version} to run as nobody")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(system)]


@pytest.fixture
def readable_bot() -> Iterator[Path]:
    """A copy of bot/ that any user can read: the checkout may be its owner's only (a 0700
    home), and bot.sandbox needs nothing outside bot/ and the standard library."""
    work = Path(tempfile.mkdtemp(prefix="shipmate-readable-"))
    try:
        shutil.copytree(ROOT / "bot", work / "bot", ignore=shutil.ignore_patterns("__pycache__"))
        for path in [work, *work.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_process_limit_without_cgroups_is_an_rlimit(readable_bot: Path) -> None:
    result = subprocess.run(
        [*_unprivileged_python(), "-c", WITHOUT_CGROUPS],
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(readable_bot)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    kind, refused, _, count, errno = result.stdout.split()[:5]
    assert (kind, refused, errno) == ("none", "refused", "11") and int(count) < 20


async def test_a_lost_disk_is_a_sandbox_failure_not_a_fresh_start(tmp_path: Path) -> None:
    async with open_sandbox(_spec(tmp_path)) as sandbox:
        await sandbox.exec(["sh", "-c", "echo work > /tmp/kept"])
        holder = sandbox._holder
        assert holder is not None
        os.killpg(holder.pid, 9)
        await holder.wait()
        with pytest.raises(SandboxUnavailable, match=r"holder exited .* are gone"):
            await sandbox.exec(["cat", "/tmp/kept"])


async def test_output_is_capped_with_a_note(tmp_path: Path) -> None:
    async with open_sandbox(_spec(tmp_path, output_bytes=10_000)) as sandbox:
        result = await sandbox.exec(
            ["bash", "-c", "head -c 100000 /dev/zero | tr '\\0' a; echo END"]
        )
    assert len(result.stdout) < 11_000
    assert result.stdout.rstrip().endswith(b"END")  # the tail is kept
    assert result.cut_bytes == 100_004 - 10_000
    assert b"output cut" in result.stderr


async def test_writes_outside_the_workspace_are_gone(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    async with open_sandbox(spec) as sandbox:
        await sandbox.exec(
            [
                "bash",
                "-c",
                "echo x > /tmp/t; echo y > ~/h; echo z > /workspace/kept; touch /usr/nope 2>/dev/null; echo $?",
            ]
        )
        scratch = sandbox._scratch
        again = await sandbox.exec(["cat", "/tmp/t"])
        assert again.stdout == b"x\n"  # one task's commands share its /tmp
    assert not scratch.exists()
    assert (spec.workspace / "kept").read_text() == "z\n"
    assert not Path("/usr/nope").exists()


async def test_two_sandboxes_cannot_see_each_other(tmp_path: Path) -> None:
    marker = f"shipmate-peer-{uuid.uuid4().hex}"
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    async with open_sandbox(_spec(a_dir, timeout_seconds=5)) as a, open_sandbox(_spec(b_dir)) as b:
        sleeper = asyncio.create_task(
            a.exec(["bash", "-c", f"echo secret > /tmp/{marker}; exec -a {marker} sleep 3"])
        )
        await asyncio.sleep(0.5)
        seen = await b.exec(["bash", "-c", "ps -eo args; ls -a /tmp ~ /workspace"])
        await sleeper
    assert seen.exit_code == 0 and b"COMMAND" in seen.stdout
    assert marker.encode() not in seen.stdout


async def test_refuses_to_run_without_bwrap(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="never runs commands unsandboxed"):
        BwrapSandbox(_spec(tmp_path), bwrap=str(tmp_path / "missing-bwrap"))


def _fake_bwrap(folder: Path, code: int) -> Path:
    """A `bwrap` that fails the way a host without user namespaces makes the real one fail."""
    folder.mkdir(exist_ok=True)
    fake = folder / "bwrap"
    fake.write_text(
        f"#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit {code}\n"
    )
    fake.chmod(0o755)
    return fake


@pytest.mark.parametrize("code", [1, 3, 124])
async def test_a_sandbox_that_cannot_start_is_not_the_command_failing(
    tmp_path: Path, code: int
) -> None:
    fake = _fake_bwrap(tmp_path / "bin", code)
    async with BwrapSandbox(_spec(tmp_path), bwrap=str(fake)) as sandbox:
        with pytest.raises(SandboxUnavailable) as failure:
            await sandbox.exec(["true"])
    # Whatever bwrap's own exit status, it is no command's: the sandbox did not start.
    assert str(failure.value) == (
        "the sandbox did not start: bwrap: No permissions to creating new namespace"
    )


async def test_bad_mounts_are_a_start_failure_and_a_missing_command_is_127(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "gone"
    spec = SandboxSpec(workspace=tmp_path, ro_binds={missing: "/opt/gone"})
    async with open_sandbox(spec) as sandbox:
        with pytest.raises(SandboxUnavailable, match=r"did not start .*Can't find source path"):
            await sandbox.exec(["true"])
    overlay = SandboxSpec(workspace=tmp_path, overlay_lower=missing)
    async with open_sandbox(overlay) as sandbox:
        with pytest.raises(SandboxUnavailable, match=r"did not start .*mount"):
            await sandbox.exec(["true"])
    async with open_sandbox(_spec(tmp_path)) as sandbox:
        not_found = await sandbox.exec(["no-such-command-here"])
        fails = await sandbox.exec(["sh", "-c", "echo 'bwrap: fake' >&2; exit 1"])
    assert not_found.exit_code == 127 and b"no-such-command-here" in not_found.stderr
    assert fails.exit_code == 1


async def test_exit_codes_and_stdin_pass_through(tmp_path: Path) -> None:
    async with open_sandbox(_spec(tmp_path)) as sandbox:
        result = await sandbox.exec(["bash", "-c", "cat; exit 7"], stdin=b"piped")
    assert (result.exit_code, result.stdout) == (7, b"piped")
    assert result.wall_seconds > 0


def test_cgroup_limits_are_what_this_host_offers() -> None:
    from bot.sandbox import limits

    assert limits.detect() in ("v1", "v2", "none")
    if os.geteuid() == 0 and Path("/sys/fs/cgroup/memory").is_dir():
        group = limits.create(64, 10)
        try:
            assert group.kind in ("v1", "v2") and group.dirs
            mine = Path("/proc/self/cgroup").read_text()
            own = limits.own_path("memory", mine).strip("/")
            under = limits.CGROUP_ROOT / "memory" / own
            if own and os.access(under, os.W_OK):  # the service's own cgroup, not the root
                assert group.dirs[0].parent == under / "shipmate"
            assert (group.dirs[0] / "memory.limit_in_bytes").read_text() == f"{64 << 20}\n"
        finally:
            group.remove()


async def test_the_root_tree_is_read_only_with_a_working_dev(tmp_path: Path) -> None:
    script = (
        "touch /x 2>&1; echo ok > /dev/null && echo null-ok; "
        "head -c 4 /dev/urandom | wc -c; test -c /dev/pts/ptmx && echo ptmx-ok; "
        "echo shm > /dev/shm/s && cat /dev/shm/s; ls /etc/ssl/private 2>&1; "
        "python3 -c 'import multiprocessing as m; m.Lock(); print(\"lock-ok\")'; "
        "ps -e --no-headers | wc -l"
    )
    async with open_sandbox(_spec(tmp_path)) as sandbox:
        result = await sandbox.exec(["bash", "-c", script])
    out = result.stdout.decode()
    assert "'/x': Read-only file system" in out
    assert "null-ok" in out and "\n4\n" in out and "ptmx-ok" in out and "shm\n" in out
    assert "/etc/ssl/private': No such file" in out  # no key folder is copied in
    assert "lock-ok" in out  # POSIX semaphores live in /dev/shm
    assert int(out.split()[-1]) <= 5  # this PID namespace's own processes only


async def test_cpu_time_of_the_whole_command_is_counted(tmp_path: Path) -> None:
    burn = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass"
    async with open_sandbox(_spec(tmp_path)) as sandbox:
        idle = await sandbox.exec(["sleep", "0.3"])
        busy = await sandbox.exec(["sh", "-c", f"python3 -c '{burn}' & wait"])
        total = sandbox.cpu_seconds
    assert busy.cpu_seconds >= 0.35, busy
    assert idle.cpu_seconds < 0.2 and idle.wall_seconds >= 0.3
    assert abs(total - idle.cpu_seconds - busy.cpu_seconds) < 1e-6


async def test_a_holder_killed_mid_command_ends_it_and_the_sandbox(tmp_path: Path) -> None:
    async with open_sandbox(_spec(tmp_path, timeout_seconds=30)) as sandbox:
        await sandbox.exec(["true"])
        holder = sandbox._holder
        assert holder is not None
        running = asyncio.create_task(sandbox.exec(["sleep", "20"]))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        os.killpg(holder.pid, 9)
        result = await asyncio.wait_for(running, 10)
        assert time.monotonic() - started < 5
        assert result.exit_code == 137 and b"killed from outside" in result.stderr
        with pytest.raises(SandboxUnavailable, match="holder exited"):
            await sandbox.exec(["true"])
