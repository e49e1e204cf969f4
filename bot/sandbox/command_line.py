"""One command as the sandbox runs it: the bwrap command line the holder's shell becomes (new
user, PID, IPC and UTS namespaces, the prepared root, a fresh /proc, the seccomp filter), where
it starts, and the environment it gets (an allowlist, never Shipmate's own)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from bot.sandbox.base import ImageRoot

INSIDE_WORKSPACE = "/workspace"
INSIDE_HOME = "/home/sandbox"
INSIDE_TMP = "/tmp"  # noqa: S108 - the sandbox's own /tmp, a private folder on the host
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INSIDE_UID = 1000  # the sandbox's own user, unless an image names one
ROOT_LINKS_OR_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Top-level folders an image's WorkingDir may not be (the checkout would hide them).
SYSTEM_TOPS = (*ROOT_LINKS_OR_DIRS, "usr", "etc", "proc", "dev", "sys", "run", "var", "boot")
PINNED_ENV = ("HOME", "TMPDIR", "SHIPMATE_SANDBOX", "PYTHONDONTWRITEBYTECODE")


def image_workdir(image: ImageRoot | None) -> str:
    """Where an image's commands start: its WorkingDir, which then shows the checkout as
    `docker run -v "$PWD:$WORKDIR" -w "$WORKDIR"` would; "" (/workspace) when it names none, or
    a system folder that showing the checkout there would hide."""
    if image is None or not image.workdir.startswith("/"):
        return ""
    parts = [part for part in image.workdir.split("/") if part]
    if not parts or "." in parts or ".." in parts or parts[0] in SYSTEM_TOPS:
        return ""
    path = "/" + "/".join(parts)
    return "" if path in (INSIDE_WORKSPACE, INSIDE_HOME, INSIDE_TMP) else path


def bwrap_argv(
    bwrap: Path,
    root: Path,
    image: ImageRoot | None,
    command: Sequence[str],
    env: Mapping[str, str],
) -> list[str]:
    """The bwrap command line for `command`, run from the holder (`bwrap`: the holder's own bind
    of it); bwrap reports on fd 3 (JSON lines, "exit-code" only once the command itself
    started)."""
    args = [
        str(bwrap),
        "--json-status-fd",
        "3",
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
        "--uid",
        str(image.uid if image else INSIDE_UID),
        "--gid",
        str(image.gid if image else INSIDE_UID),
        # Filtered from the start: no file gets a setuid or setgid bit (bot/sandbox/seccomp.py).
        "--seccomp",
        "4",
        # Devices: only the ones the holder bound under /dev; everything else it mounted is
        # nodev, and a user namespace cannot make device nodes.
        "--dev-bind",
        str(root),
        "/",
        "--proc",
        "/proc",
        "--chdir",
        image_workdir(image) or INSIDE_WORKSPACE,
        "--clearenv",
    ]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return [*args, "--", *command]


def environment(
    image: ImageRoot | None, extra_env: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A command's environment: ours, the image's own over it (our private folders' names
    pinned), then `extra_env` (the egress proxy's) and `extra` (the caller's)."""
    env = {
        "PATH": PATH,
        "HOME": INSIDE_HOME,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "USER": "sandbox",
        "TMPDIR": INSIDE_TMP,
        "SHIPMATE_SANDBOX": "1",
        # Stale bytecode after a same-size edit in the same second would hide the edit, and
        # __pycache__ folders would end up in the task's diff.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if image is not None:
        # The image's own PATH, LANG, toolchain homes...; never our private folders' names.
        env.update((k, v) for k, v in image.env if k not in PINNED_ENV)
    env.update(extra_env)
    if extra:
        env.update(extra)
    return env
