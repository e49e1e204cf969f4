"""What every sandbox backend offers. The agent and bot/runs/job.py see only this."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypedDict, Unpack

EXIT_TIMEOUT = 124
EXIT_SANDBOX_FAILED = 125
# A command given no timeout (none in its Limits either) still ends: after this long.
DEFAULT_TIMEOUT_SECONDS = 600.0
# How a refused host can be allowed, as the egress proxy's 403 says it ({host}, {port}): by
# the repository's config for a task from GitHub, by the flag for `shipmate sandbox exec`.
ALLOW_BY_REPO_CONFIG = (
    "a maintainer can add it to network.allow in .github/shipmate.yml on the default branch"
)
ALLOW_BY_FLAG = "allow it with --allow-host {host}:{port}"


class SandboxUnavailable(Exception):
    """The sandbox could not start (no isolation on this host, bad mount...). Never run bare."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one command. None means the backend's default (for the timeout:
    DEFAULT_TIMEOUT_SECONDS; no command runs unbounded)."""

    timeout_seconds: float | None = DEFAULT_TIMEOUT_SECONDS
    memory_mib: int | None = 2048
    max_processes: int | None = 512
    output_bytes: int = 1_000_000
    workspace_mib: int | None = 4096


@dataclass(frozen=True)
class ExecResult:
    """What one command did. `stdout`/`stderr` are already capped; `cut_bytes` says by how much."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    cut_bytes: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0


@dataclass(frozen=True)
class ImageRoot:
    """An OCI image's unpacked root filesystem (bot/sandbox/image_cache.py), which the sandbox's
    root tree is built from instead of the host's system folders. `rootfs` is only ever the
    read-only lower layer of the task's own overlay; Env, WorkingDir and User come from the
    image's config (User as numbers, which map inside the sandbox's user namespace only)."""

    rootfs: Path
    digest: str
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = ""
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class SandboxSpec:
    """Everything one sandbox is built from."""

    workspace: Path
    limits: Limits = field(default_factory=Limits)
    allow_hosts: Sequence[str] = ()
    # NAME -> (real value, the HOST[:PORT] or hosts it may go to). Inside, NAME holds a
    # placeholder. The operator's declarations decide these (bot/sandbox/operator_secrets.py).
    secrets: Mapping[str, tuple[str, str | Sequence[str]]] = field(default_factory=dict)
    # Address ranges beyond the public internet the egress proxy may reach (CIDRs), from the
    # operator only: SHIPMATE_EGRESS_ALLOW_NETWORKS or `sandbox exec --allow-network`.
    allow_networks: Sequence[str] = ()
    # Secret values found in the checkout: the egress proxy refuses any request carrying one.
    guarded: Sequence[str] = ()
    # Extra mounts: host path -> path inside.
    ro_binds: Mapping[Path, str] = field(default_factory=dict)
    rw_binds: Mapping[Path, str] = field(default_factory=dict)
    # Host folders shown writable inside while never written: the task's writes land on its
    # own disk (an overlay) and are dropped with the sandbox. Host path -> path inside.
    layered_binds: Mapping[Path, str] = field(default_factory=dict)
    task_id: str = "adhoc"
    # When set, /workspace is a copy-on-write overlay over this read-only tree (a cached
    # checkout) instead of a bind of `workspace`; the task's changes live in its own upper layer.
    overlay_lower: Path | None = None
    # When set, the root tree is this image's instead of the host's system folders.
    image: ImageRoot | None = None
    # What the egress proxy's refusal tells the command to do to be allowed a host.
    allow_hint: str = ALLOW_BY_REPO_CONFIG


class ExecOptions(TypedDict, total=False):
    """What a command may be given besides its argv; each one left out (or None) is none:
    no input, the sandbox's own time limit, the sandbox's own environment only."""

    stdin: bytes | None
    timeout_seconds: float | None
    env: Mapping[str, str] | None


class Sandbox(Protocol):
    """A started sandbox: commands run with `workspace` at /workspace as their directory."""

    @property
    def workspace(self) -> Path: ...

    async def exec(self, argv: Sequence[str], **options: Unpack[ExecOptions]) -> ExecResult: ...

    async def seal(self) -> None:
        """Make the read-write binds (the dependency cache while `setup:` fills it) read-only
        for every later command; their writes land in a layer dropped with the sandbox."""
        ...

    async def close(self) -> None: ...
