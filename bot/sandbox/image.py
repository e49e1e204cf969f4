"""OCI image references, the operator's registry policy, the platform chosen from an index and
the image config a sandbox honours. Pure: no I/O; pulling is bot/sandbox/image_pull.py.

A reference is named by a repository (untrusted text), so it is parsed strictly: a registry
host[:port], a lowercase repository path, then a tag and/or a sha256 digest, nothing else — it
ends up as an argument of skopeo, and a reference that could be read as an option is refused.
"""

from __future__ import annotations

import ipaddress
import json
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DOCKER_HUB = "docker.io"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:]+\])(?::[0-9]{{1,5}})?")
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class ImageError(Exception):
    """The image cannot be used: a bad reference, a registry the operator does not allow, a
    pull or unpack that failed. `str()` says which and why, in one line."""


@dataclass(frozen=True)
class ImageReference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{digest}"

    def pinned(self, digest: str) -> ImageReference:
        """The same repository at `digest` (what is actually copied: skopeo checks it)."""
        return ImageReference(self.registry, self.repository, None, digest)


def parse_reference(text: str) -> ImageReference:
    """`python:3.12`, `ghcr.io/org/ci:1`, `host:5000/team/node@sha256:…` → its parts, with
    Docker Hub's defaults (`docker.io`, `library/`, `latest`) filled in."""
    raw = text.strip()
    if not raw or len(raw) > 512 or any(ch.isspace() for ch in raw) or raw.startswith("-"):
        raise ImageError(f"not an image reference: {text!r}")
    rest, digest = raw, None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not DIGEST.fullmatch(digest):
            raise ImageError(f"{text!r}: the digest must be sha256: and 64 hex digits")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, path = first, remainder
    else:
        registry, path = DOCKER_HUB, rest
    tag = None
    head, colon, maybe_tag = path.rpartition(":")
    if colon and "/" not in maybe_tag:
        path, tag = head, maybe_tag
        if not _TAG.fullmatch(tag):
            raise ImageError(f"{text!r}: {tag!r} is not a valid tag")
    if not _HOST.fullmatch(registry):
        raise ImageError(f"{text!r}: {registry!r} is not a registry host[:port]")
    registry = registry.lower()
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not _REPOSITORY.fullmatch(path) or len(path) > 255:
        raise ImageError(f"{text!r}: {path!r} is not a valid repository name")
    if tag is None and digest is None:
        tag = "latest"
    return ImageReference(registry, path, tag, digest)


@dataclass(frozen=True)
class RegistryPolicy:
    """What the operator allows: which registries repositories may name (empty: any), which
    are reached over plain HTTP, and the credentials file (containers-auth.json format)."""

    allowed: Sequence[str] = ()
    insecure: Sequence[str] = ()
    auth_file: str | None = None

    def check(self, reference: ImageReference) -> None:
        allowed = [host.strip().lower() for host in self.allowed if host.strip()]
        if allowed and reference.registry not in allowed:
            raise ImageError(
                f"{reference}: the registry {reference.registry} is not among those the operator "
                f"allows (SHIPMATE_ALLOWED_REGISTRIES: {', '.join(allowed)})"
            )

    def is_insecure(self, reference: ImageReference) -> bool:
        return reference.registry in {host.strip().lower() for host in self.insecure}

    def named(self, reference: ImageReference) -> bool:
        """Whether the operator named this registry (allowed or insecure) themselves."""
        hosts = {host.strip().lower() for host in (*self.allowed, *self.insecure)}
        return reference.registry in hosts

    def check_addresses(self, reference: ImageReference, addresses: Sequence[str]) -> None:
        """A repository names the registry, and the host connects to it: a loopback, private
        or link-local one (an internal service, the cloud's metadata address) only when the
        operator named that registry."""
        inside = [address for address in addresses if not _is_global(address)]
        if inside and not self.named(reference):
            raise ImageError(
                f"{reference}: {reference.registry} is a private address ({inside[0]}); list it "
                "in SHIPMATE_ALLOWED_REGISTRIES or SHIPMATE_INSECURE_REGISTRIES to pull from it"
            )


def _is_global(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return ip.is_global and not ip.is_multicast


def registry_host(reference: ImageReference) -> tuple[str, int]:
    """(host, port) the registry is reached at (Docker Hub's API lives on registry-1)."""
    if reference.registry == DOCKER_HUB:
        return "registry-1.docker.io", 443
    host, _, port = reference.registry.rpartition(":")
    if not host or not port.isdigit():
        host, port = reference.registry, "443"
    return host.strip("[]"), int(port)


def host_platform(machine: str | None = None) -> tuple[str, str]:
    """(os, architecture) in OCI's words for this host; amd64 when the machine is unknown."""
    return "linux", ARCHITECTURES.get((machine or platform.machine()).lower(), "amd64")


def is_index(manifest: Mapping[str, Any]) -> bool:
    media = manifest.get("mediaType")
    return media in INDEX_TYPES or (media is None and "manifests" in manifest)


def pick_platform(index: Mapping[str, Any], wanted: tuple[str, str]) -> str:
    """The digest of `wanted`'s manifest in an image index (a variant-less match first)."""
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise ImageError("the image index lists no manifests")
    matches: list[tuple[int, str]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        where = entry.get("platform") or {}
        digest = entry.get("digest")
        if not isinstance(where, dict) or not isinstance(digest, str):
            continue
        if (where.get("os"), where.get("architecture")) == wanted and DIGEST.fullmatch(digest):
            matches.append((1 if where.get("variant") else 0, digest))
    if not matches:
        raise ImageError(f"the image has no {wanted[0]}/{wanted[1]} variant")
    return sorted(matches)[0][1]


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image's config a sandbox honours."""

    env: tuple[tuple[str, str], ...] = ()
    workdir: str = ""
    user: str = ""


def parse_config(data: bytes) -> ImageConfig:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ImageError(f"the image config is not JSON: {exc}") from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        return ImageConfig()
    env: list[tuple[str, str]] = []
    for item in config.get("Env") or []:
        if isinstance(item, str) and "=" in item and "\0" not in item:
            key, _, value = item.partition("=")
            if key:
                env.append((key, value))
    workdir = config.get("WorkingDir")
    user = config.get("User")
    return ImageConfig(
        tuple(env),
        workdir if isinstance(workdir, str) and workdir.startswith("/") else "",
        user if isinstance(user, str) else "",
    )


def resolve_user(user: str, passwd: str, group: str) -> tuple[int, int]:
    """The image's `User` (`name`, `uid`, `name:group`, `uid:gid`) as numbers, from the image's
    own /etc/passwd and /etc/group texts. Unset is root, as for any container: root of the
    sandbox's user namespace only."""
    if not user:
        return 0, 0
    name, _, group_name = user.partition(":")
    users = _table(passwd, 4)
    if name.isdigit():
        uid = int(name)
        gid = next((int(row[3]) for row in users.values() if row[2] == name), uid)
    elif name in users:
        uid, gid = int(users[name][2]), int(users[name][3])
    else:
        raise ImageError(f"the image's user {name!r} is not in its /etc/passwd")
    if group_name:
        groups = _table(group, 3)
        if group_name.isdigit():
            gid = int(group_name)
        elif group_name in groups:
            gid = int(groups[group_name][2])
        else:
            raise ImageError(f"the image's group {group_name!r} is not in its /etc/group")
    if not (0 <= uid < 65536 and 0 <= gid < 65536):
        raise ImageError(f"the image's user {user!r} is out of the sandbox's id range")
    return uid, gid


def _table(text: str, numeric: int) -> dict[str, list[str]]:
    """name -> fields of a passwd (`numeric` 4: uid and gid) or group (3: gid) file."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= numeric and all(field.isdigit() for field in fields[2:numeric]):
            rows.setdefault(fields[0], fields)
    return rows
