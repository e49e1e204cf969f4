"""Which host uid and gid a sandbox's processes are.

Inside, a command is uid 1000 in a user namespace of its own; outside, that uid is the sandbox
uid, never host root. Shipmate running as an ordinary user runs its sandboxes as itself (it has
no other uid to give). Shipmate running as root runs them as a dedicated unprivileged uid:
`SHIPMATE_SANDBOX_USER` (a user name, `UID` or `UID:GID`), else the system user
`shipmate-sandbox` when the host has one, else uid and gid 2000000000 (no account needed; above
login ranges and the usual /etc/subuid ranges). So `/proc/sys` and every host-owned file stay
read-only to a sandbox, and what it writes on the host belongs to that uid.

A setting that cannot hold (uid 0, a uid an ordinary user cannot switch to) refuses the sandbox
with the reason: never a silent fallback to another uid.
"""

from __future__ import annotations

import functools
import os
import pwd
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bot.sandbox.base import SandboxUnavailable

SETTING = "SHIPMATE_SANDBOX_USER"
DEFAULT_USER = "shipmate-sandbox"
DEFAULT_ID = 2_000_000_000


@dataclass(frozen=True)
class SandboxIdentity:
    """The host uid and gid of a sandbox's processes, and why these."""

    uid: int
    gid: int
    source: str
    # Shipmate is root and gives its sandboxes another uid (it drops to it for each sandbox).
    switch: bool

    def describe(self) -> str:
        return f"uid {self.uid}, gid {self.gid} ({self.source})"


def _parse(setting: str) -> tuple[int, int, str]:
    """(uid, gid, source) for a `SHIPMATE_SANDBOX_USER` value."""
    head, sep, tail = setting.partition(":")
    if head.isdigit() and (not sep or tail.isdigit()):
        uid = int(head)
        return uid, int(tail) if sep else uid, f"{SETTING}={setting}"
    try:
        entry = pwd.getpwnam(setting)
    except KeyError:
        raise SandboxUnavailable(
            f"{SETTING}={setting}: no such user on this host (give a user name, UID or UID:GID)"
        ) from None
    return entry.pw_uid, entry.pw_gid, f"{SETTING}={setting}"


@functools.cache
def resolve(setting: str | None, euid: int, egid: int) -> SandboxIdentity:
    """The sandbox identity for Shipmate running as `euid`/`egid`, or SandboxUnavailable
    saying why sandboxes cannot run safely with this setting."""
    if euid != 0:
        if setting:
            uid, _, source = _parse(setting)
            if uid != euid:
                raise SandboxUnavailable(
                    f"{source} asks for uid {uid}, but Shipmate runs as uid {euid}, which "
                    "cannot switch users: run Shipmate as root, or unset the setting"
                )
        return SandboxIdentity(euid, egid, "Shipmate's own uid: it does not run as root", False)
    if setting:
        uid, gid, source = _parse(setting)
    else:
        try:
            entry = pwd.getpwnam(DEFAULT_USER)
            uid, gid, source = entry.pw_uid, entry.pw_gid, f"the system user {DEFAULT_USER}"
        except KeyError:
            uid, gid = DEFAULT_ID, DEFAULT_ID
            source = f"the default, as no user {DEFAULT_USER} exists; set {SETTING} to change it"
    if uid == 0 or gid == 0:
        raise SandboxUnavailable(
            f"{source} is uid {uid}, gid {gid}: a sandbox never runs as host root "
            f"(uid and gid 0); set {SETTING} to an unprivileged user"
        )
    return SandboxIdentity(uid, gid, source, True)


def announce() -> SandboxIdentity | None:
    """At start (`shipmate serve`, `shipmate worker`): say, when it is so, that every task will
    be refused and why, before the first one fails with it (`shipmate doctor` tells the uid)."""
    try:
        return current()
    except SandboxUnavailable as exc:
        import structlog

        structlog.get_logger("shipmate.sandbox").error(
            "sandbox.refused", reason=str(exc), detail="every task will fail until this is fixed"
        )
        return None


def current() -> SandboxIdentity:
    """The identity for this process and its `SHIPMATE_SANDBOX_USER`, read now (not at
    import time)."""
    return resolve(os.environ.get(SETTING) or None, os.geteuid(), os.getegid())


@functools.cache
def idmap_userns(user: SandboxIdentity) -> int:
    """An open user namespace in which uid and gid 0 are `user`'s, made once per process (it
    lives as long as this descriptor): the holder idmaps root's checkout trees through it, so
    the sandbox may change their files in its own layer. Root only."""
    child = subprocess.Popen(
        ["unshare", "--user", "--", "sh", "-c", "echo; read _"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        if child.stdout.readline() != b"\n":
            raise SandboxUnavailable("could not make a user namespace for the sandbox uid")
        maps = (
            ("uid_map", f"0 {user.uid} 1"),
            ("setgroups", "deny"),
            ("gid_map", f"0 {user.gid} 1"),
        )
        for name, text in maps:
            with open(f"/proc/{child.pid}/{name}", "w") as file:
                file.write(text)
        return os.open(f"/proc/{child.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SandboxUnavailable(f"could not map the sandbox uid {user.uid}: {exc}") from exc
    finally:
        child.stdin.close()
        child.wait()


def give(folder: Path, uid: int, gid: int) -> None:
    """`folder` and everything in it owned by `uid`/`gid` (symlinks themselves, never followed;
    other filesystems below it left alone), setuid and setgid bits cleared."""
    device = folder.lstat().st_dev
    _own(str(folder), uid, gid, device)
    for parent, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if os.lstat(os.path.join(parent, d)).st_dev == device]
        for name in [*dirs, *files]:
            _own(os.path.join(parent, name), uid, gid, device)


def _own(path: str, uid: int, gid: int, device: int) -> None:
    info = os.lstat(path)
    if info.st_dev != device:
        return
    if (info.st_uid, info.st_gid) != (uid, gid):
        os.lchown(path, uid, gid)
    if not stat.S_ISLNK(info.st_mode) and info.st_mode & (stat.S_ISUID | stat.S_ISGID):
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))
