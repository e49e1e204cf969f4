"""Shipmate runs as root (the README allows it): a sandbox's root must still be no host root.

Issue 13, attacks 1 and 2: `/proc/sys` was writable from inside (uid 0 inside was host uid 0),
and `cp /bin/sh x; chmod 4755 x` in the workdir left a setuid-root shell on the host.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from bot.sandbox import identity
from bot.sandbox.base import EXIT_SANDBOX_FAILED
from tests.adversarial.attack import shipmate_exec

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="these attacks need Shipmate running as root"),
]

SETUID_BITS = stat.S_ISUID | stat.S_ISGID
AS_NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--"]


def test_kernel_settings_stay_read_only() -> None:
    panic = Path("/proc/sys/kernel/panic").read_bytes()
    core = Path("/proc/sys/kernel/core_pattern").read_bytes()
    attack = (
        "cat /proc/sys/kernel/panic > /proc/sys/kernel/panic && echo WROTE-PANIC; "
        "echo '|/bin/sh -c id' > /proc/sys/kernel/core_pattern && echo WROTE-CORE; "
        "echo 1 > /proc/sysrq-trigger && echo WROTE-SYSRQ; "
        "cat /proc/self/uid_map"
    )
    done = shipmate_exec("--timeout", "30", "--", "sh", "-c", attack)
    assert done.returncode == 0, done.stderr
    assert b"WROTE" not in done.stdout
    assert done.stderr.count(b"Permission denied") >= 2
    assert Path("/proc/sys/kernel/core_pattern").read_bytes() == core
    assert Path("/proc/sys/kernel/panic").read_bytes() == panic
    # Uid 1000 inside is one uid of the holder's namespace, whose root is not host root.
    assert done.stdout.split()[:3] == [b"1000", b"0", b"1"]


def test_no_setuid_file_reaches_the_host(open_folder: Path) -> None:
    user = identity.current()
    workdir = open_folder / "work"
    workdir.mkdir()
    (workdir / "mine.txt").write_text("the operator's")
    attacks = [
        "cp /bin/sh sh1; chmod 4755 sh1",
        "cp /bin/sh sh2; chmod u+s,g+s sh2",
        "install -m 4755 /bin/sh sh3",
        "cp -p /usr/bin/su su",
        "python3 -c 'import os; os.close(os.open(\"sh4\", os.O_CREAT | os.O_WRONLY, 0o6755))'",
        "python3 -c 'import os; os.mkdir(\"sgid\", 0o2755)'",
        "cp /bin/sh sh5; python3 -c 'import os; os.chmod(\"sh5\", 0o4755)'",
        "mkdir t && cp /bin/sh t/sh6 && chmod 755 t/sh6 && tar --mode=u+s -cf a.tar -C t sh6"
        " && tar -xpf a.tar",
    ]
    done = shipmate_exec(
        "--workdir", str(workdir), "--timeout", "60", "--", "sh", "-c", "; ".join(attacks)
    )
    assert done.returncode != EXIT_SANDBOX_FAILED, done.stderr
    assert b"Operation not permitted" in done.stderr
    planted = list(workdir.rglob("*"))
    assert {p.name for p in planted} >= {"sh1", "sh2", "sh3", "mine.txt"}
    for path in planted:
        info = path.lstat()
        assert info.st_mode & SETUID_BITS == 0, f"{path.name} is {stat.filemode(info.st_mode)}"
        # What the sandbox writes (and the workdir it was handed) is the sandbox uid's.
        assert (info.st_uid, info.st_gid) == (user.uid, user.gid), path.name
    # Exec'd from the host by another local user, a planted shell gives that user's uid only.
    shells = [p for p in planted if p.name.startswith("sh") and p.stat().st_mode & stat.S_IXOTH]
    assert shells
    for shell in shells:
        ran = subprocess.run(
            [*AS_NOBODY, str(shell), "-p", "-c", "id -u; id -g"],
            capture_output=True,
            timeout=10,
        )
        assert ran.stdout.split() == [b"65534", b"65534"], (shell.name, ran)


def test_writable_mounts_are_nosuid_nodev_and_no_new_privileges() -> None:
    done = shipmate_exec(
        "--timeout",
        "30",
        "--",
        "sh",
        "-c",
        "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; cat /proc/self/mountinfo",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert "NoNewPrivs:\t1" in lines and "Seccomp:\t2" in lines
    for line in lines[2:]:
        fields = line.split()
        point, options = fields[4], fields[5].split(",")
        assert "nosuid" in options, line
        device = point.startswith("/dev/") and point != "/dev/shm"
        if "rw" in options and not device:
            assert "nodev" in options, line


def test_proc_inside_shows_nothing_of_the_host() -> None:
    done = shipmate_exec(
        "--timeout",
        "30",
        "--",
        "sh",
        "-c",
        "readlink /proc/1/cwd /proc/1/root; tr '\\0' '\\n' < /proc/1/environ; "
        "cat /proc/1/mountinfo; ls /proc | grep -c '^[0-9]'",
    )
    assert done.returncode == 0, done.stderr
    seen = done.stdout.decode()
    assert seen.splitlines()[:2] == ["/workspace", "/"]
    # Nothing of the host's working directory, Shipmate's scratch folders or environment.
    for host in (os.getcwd(), "shipmate-exec-", "SHIPMATE", "HOME="):
        assert host not in seen, host
    assert int(seen.split()[-1]) <= 4  # the sandbox's init, sh, and what it ran


def test_uid_zero_is_refused_never_used() -> None:
    done = shipmate_exec("--", "true", env={identity.SETTING: "0"})
    assert done.returncode == EXIT_SANDBOX_FAILED
    assert b"never runs as host root" in done.stderr


def test_a_system_folder_is_not_handed_to_the_sandbox() -> None:
    before = os.stat("/etc")
    done = shipmate_exec("--workdir", "/etc", "--", "true")
    assert done.returncode == EXIT_SANDBOX_FAILED and b"system folder" in done.stderr
    assert os.stat("/etc").st_uid == before.st_uid == 0
