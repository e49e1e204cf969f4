"""Pulling over the OCI distribution API, with skopeo.

skopeo (containers/image, Debian package `skopeo`) is the maintained client: it speaks the
distribution API, the bearer-token dance Docker Hub and GHCR use (anonymous or with the
operator's credentials file), honours the host's registries.conf and policy.json, and checks
every blob and the manifest against their digests while it copies. Shipmate asks it for two
things: the manifest behind a reference (to choose the platform and name the cache entry) and
a copy of that exact manifest, by digest, into a private OCI layout that bot/sandbox/
image_unpack.py checks again and unpacks. Plain HTTP (and unverified TLS) only for registries
the operator lists as insecure; credentials never appear on a command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
from pathlib import Path

from bot.sandbox.image import (
    ImageError,
    ImageReference,
    RegistryPolicy,
    host_platform,
    is_index,
    pick_platform,
    registry_host,
)

INSPECT_SECONDS = 60.0
COPY_SECONDS = 1800.0
# The operator's proxy settings reach skopeo; nothing else of Shipmate's environment does.
PASSED_ENV = [
    "PATH",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "TMPDIR",
]
_FATAL = re.compile(r'msg="(.*)"')


def find_skopeo() -> str:
    path = shutil.which("skopeo")
    if path is None:
        raise ImageError("skopeo is not installed: apt-get install skopeo")
    return path


def _flags(reference: ImageReference, policy: RegistryPolicy, side: str = "") -> list[str]:
    insecure = policy.is_insecure(reference)
    flags = [f"--{side}tls-verify={'false' if insecure else 'true'}"]
    if policy.auth_file:
        flags += [f"--{side}authfile", policy.auth_file]
    else:
        # Only credentials the operator configured for Shipmate: not whatever the host's user
        # logged in to (skopeo would look in ~/.docker and $XDG_RUNTIME_DIR otherwise).
        flags.append(f"--{side}no-creds")
    return flags


async def _skopeo(args: list[str], seconds: float, home: Path) -> bytes:
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    env["HOME"] = str(home)
    try:
        process = await asyncio.create_subprocess_exec(
            find_skopeo(),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        raise ImageError(f"could not run skopeo: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(process.communicate(), seconds)
    except (TimeoutError, asyncio.CancelledError) as exc:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        if isinstance(exc, TimeoutError):
            raise ImageError(f"skopeo {args[0]} took more than {seconds:g} s") from None
        raise
    if process.returncode != 0:
        raise ImageError(_failure(err))
    return out


def _failure(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line]
    last = lines[-1] if lines else "skopeo failed without a message"
    found = _FATAL.search(last)
    return found.group(1).replace('\\"', '"') if found else last


async def checked(reference: ImageReference, policy: RegistryPolicy) -> None:
    """The operator's policy, and where the registry's name leads (see `check_addresses`)."""
    policy.check(reference)
    if policy.named(reference):
        return
    host, port = registry_host(reference)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ImageError(f"{reference}: cannot resolve {host}: {exc}") from None
    policy.check_addresses(reference, [str(entry[4][0]) for entry in found])


async def resolve(
    reference: ImageReference,
    policy: RegistryPolicy,
    home: Path,
    wanted: tuple[str, str] | None = None,
) -> str:
    """The digest of the manifest `reference` names for this platform (through its index)."""
    await checked(reference, policy)
    raw = await _skopeo(
        ["inspect", "--raw", *_flags(reference, policy), f"docker://{reference}"],
        INSPECT_SECONDS,
        home,
    )
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    if reference.digest and digest != reference.digest:
        raise ImageError(f"{reference}: the registry sent a manifest whose digest is {digest}")
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise ImageError(f"{reference}: the registry's manifest is not JSON") from None
    if not isinstance(manifest, dict):
        raise ImageError(f"{reference}: the registry's manifest is not a JSON object")
    if is_index(manifest):
        return pick_platform(manifest, wanted or host_platform())
    return digest


async def copy(
    reference: ImageReference, digest: str, policy: RegistryPolicy, layout: Path
) -> None:
    """Copy the manifest `digest` of `reference`'s repository, its config and layers into the
    OCI layout `layout` (tag `image`); skopeo refuses any blob whose digest does not match."""
    await checked(reference, policy)
    pinned = reference.pinned(digest)
    await _skopeo(
        [
            "copy",
            "--quiet",
            "--retry-times",
            "2",
            *_flags(pinned, policy, "src-"),
            f"docker://{pinned}",
            f"oci:{layout}:image",
        ],
        COPY_SECONDS,
        layout.parent,
    )
