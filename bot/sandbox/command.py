"""`shipmate sandbox exec`: run one command in a fresh sandbox, as the contract says.

Exit code: the command's; 124 when the timeout killed it (600 s unless `--timeout` says
otherwise); 125 when the sandbox could not start.

Run as root, the sandbox is an unprivileged uid (bot/sandbox/identity.py), so `--workdir DIR`
is handed to it: DIR and everything in it become that uid's (setuid and setgid bits cleared)
before the command runs. A system folder is refused rather than given away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bot.config import Settings
from bot.sandbox import identity, open_sandbox
from bot.sandbox.base import (
    ALLOW_BY_FLAG,
    DEFAULT_TIMEOUT_SECONDS,
    EXIT_SANDBOX_FAILED,
    ImageRoot,
    Limits,
    SandboxSpec,
    SandboxUnavailable,
)
from bot.sandbox.destinations import parse_networks
from bot.sandbox.placeholders import parse_hosts

# Never handed to the sandbox uid: the host's own folders, whole or in part.
SYSTEM_FOLDERS: tuple[str, ...] = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
SYSTEM_FOLDERS += ("/boot", "/dev", "/proc", "/sys", "/run", "/var", "/opt", "/srv")


def _secrets(specs: list[str]) -> dict[str, tuple[str, str]]:
    """`--secret NAME@HOST[:PORT]`: the operator's own flag, the value from the host's NAME."""
    table: dict[str, tuple[str, str]] = {}
    for spec in specs:
        name, sep, host = spec.partition("@")
        if not sep or not name or not host:
            raise SandboxUnavailable(f"--secret takes NAME@HOST[:PORT], not {spec!r}")
        try:
            if parse_hosts(host)[0][0].startswith("*"):
                raise ValueError("a secret goes to a named host, not to a wildcard")
        except ValueError as exc:
            raise SandboxUnavailable(f"--secret {spec}: {exc}") from None
        value = os.environ.get(name)
        if value is None:
            raise SandboxUnavailable(
                f"--secret {spec}: the host has no environment variable {name}"
            )
        table[name] = (value, host)
    return table


def _networks(flags: list[str]) -> tuple[str, ...]:
    """The ranges beyond the public internet this sandbox may reach: the operator's setting
    SHIPMATE_EGRESS_ALLOW_NETWORKS plus each `--allow-network CIDR`."""
    setting = os.environ.get("SHIPMATE_EGRESS_ALLOW_NETWORKS", "")
    entries = tuple(part.strip() for part in [*setting.split(","), *flags] if part.strip())
    try:
        parse_networks(entries)
    except ValueError as exc:
        raise SandboxUnavailable(
            f"--allow-network / SHIPMATE_EGRESS_ALLOW_NETWORKS: {exc}"
        ) from None
    return entries


def _ca_dir() -> Path:
    """The install's CA, where `shipmate serve` and `shipmate run` keep it (data dir)."""
    data_dir = os.environ.get("SHIPMATE_DATA_DIR") or str(Settings.model_fields["data_dir"].default)
    return Path(data_dir).resolve() / "cache" / "ca"


async def _image(holding: contextlib.AsyncExitStack, reference: str | None) -> ImageRoot | None:
    """`--image REF`'s root, pulled into the install's cache and held there by `holding`."""
    if reference is None:
        return None
    from bot.sandbox.environment import Environments
    from bot.sandbox.image import ImageError

    environments = Environments.from_settings(Settings.load())
    try:
        return await holding.enter_async_context(environments.store.use(reference))
    except ImageError as exc:
        raise SandboxUnavailable(f"--image {reference}: {exc}") from None


async def _run(
    args: argparse.Namespace, command: list[str], workdir: Path, temporary: str | None
) -> int:
    limits = Limits(
        timeout_seconds=args.timeout if args.timeout is not None else DEFAULT_TIMEOUT_SECONDS,
        memory_mib=args.memory if args.memory is not None else Limits.memory_mib,
    )
    try:
        async with contextlib.AsyncExitStack() as holding:
            spec = SandboxSpec(
                workspace=workdir,
                limits=limits,
                allow_hosts=tuple(args.allow_host),
                secrets=_secrets(args.secret),
                allow_networks=_networks(args.allow_network),
                task_id="exec",
                image=await _image(holding, args.image),
                allow_hint=ALLOW_BY_FLAG,
            )
            async with open_sandbox(spec, backend=args.backend, ca_dir=_ca_dir()) as sandbox:
                stdin = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
                result = await sandbox.exec(command, stdin=stdin or None)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(result.stderr)
    sys.stderr.flush()
    return result.exit_code


def _check_workdir(workdir: Path) -> None:
    """Refuse a DIR that must not become the sandbox uid's (only when it would: as root)."""
    if not identity.current().switch:
        return
    shared = (Path("/"), Path("/root"), Path("/home"), Path(tempfile.gettempdir()))
    if workdir in shared or any(
        workdir == Path(folder) or Path(folder) in workdir.parents for folder in SYSTEM_FOLDERS
    ):
        raise SandboxUnavailable(
            f"--workdir {workdir}: a system folder; the sandbox uid would own it (give a folder "
            "of its own)"
        )


def exec_command(args: argparse.Namespace) -> int:
    command = list(args.argv)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("shipmate sandbox exec: give a command after --", file=sys.stderr)
        return 2
    temporary = None
    try:
        if args.workdir is None:
            temporary = tempfile.mkdtemp(prefix="shipmate-workdir-")
            workdir = Path(temporary)
        else:
            workdir = Path(args.workdir).resolve()
            if not workdir.is_dir():
                raise SandboxUnavailable(f"--workdir {args.workdir} is not a folder")
            _check_workdir(workdir)
        return asyncio.run(_run(args, command, workdir, temporary))
    except SandboxUnavailable as exc:
        print(f"shipmate sandbox: cannot start the sandbox: {exc}", file=sys.stderr)
        return EXIT_SANDBOX_FAILED
