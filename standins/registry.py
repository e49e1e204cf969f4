"""A registry for tests and benchmarks: a real distribution registry (Debian's
`docker-registry`) on loopback, and OCI layouts of hand-made layers to push to it with skopeo
(busybox-static for a working userland, or whatever an attacker would put in a layer)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUSYBOX = Path("/bin/busybox")
APPLETS = "sh ls cat echo id env pwd touch mkdir test stat wc true false grep sleep cp rm mv head"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str = "file"  # file, dir, symlink, hardlink, char, fifo
    data: bytes = b""
    mode: int = 0o644
    link: str = ""


def layer(entries: list[Entry]) -> bytes:
    """A gzip-compressed tar layer of `entries`, in order."""
    kinds = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "char": tarfile.CHRTYPE,
        "fifo": tarfile.FIFOTYPE,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type, info.mode, info.linkname = kinds[entry.kind], entry.mode, entry.link
            info.size = len(entry.data) if entry.kind == "file" else 0
            if entry.kind == "char":
                info.devmajor, info.devminor = 1, 3
            archive.addfile(info, io.BytesIO(entry.data) if entry.kind == "file" else None)
    return gzip.compress(buffer.getvalue(), mtime=0)


def busybox_layer(extra: list[Entry] = ()) -> list[Entry]:  # type: ignore[assignment]
    """A minimal userland: busybox, its applets as symlinks, a `bash` that is busybox's sh."""
    entries = [
        Entry("bin", "dir", mode=0o755),
        Entry("bin/busybox", data=BUSYBOX.read_bytes(), mode=0o755),
    ]
    for applet in APPLETS.split():
        entries.append(Entry(f"bin/{applet}", "symlink", link="busybox"))
    entries.append(Entry("bin/bash", data=b'#!/bin/sh\nexec /bin/sh "$@"\n', mode=0o755))
    entries += [Entry("etc", "dir", mode=0o755), Entry("tmp", "dir", mode=0o1777)]
    return entries + list(extra)


class Layout:
    """An OCI image layout being written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(self, data: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (self.path / "blobs" / "sha256" / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    def image(
        self, layers: list[list[Entry]], config: dict[str, Any] | None = None, arch: str = "amd64"
    ) -> dict[str, Any]:
        """Write an image's blobs; returns its manifest's descriptor."""
        blobs = [layer(entries) for entries in layers]
        document = {
            "architecture": arch,
            "os": "linux",
            "config": config or {},
            "rootfs": {
                "type": "layers",
                "diff_ids": [
                    f"sha256:{hashlib.sha256(gzip.decompress(b)).hexdigest()}" for b in blobs
                ],
            },
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                **self.blob(json.dumps(document).encode()),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **self.blob(b)}
                for b in blobs
            ],
        }
        return {
            "mediaType": MANIFEST,
            **self.blob(json.dumps(manifest).encode()),
            "platform": {"os": "linux", "architecture": arch},
        }

    def tag(self, descriptor: dict[str, Any], tag: str = "1") -> str:
        annotated = {**descriptor, "annotations": {"org.opencontainers.image.ref.name": tag}}
        (self.path / "index.json").write_text(
            json.dumps({"schemaVersion": 2, "manifests": [annotated]})
        )
        return str(descriptor["digest"])

    def index(self, manifests: list[dict[str, Any]]) -> dict[str, Any]:
        data = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}).encode()
        return {"mediaType": INDEX, **self.blob(data)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Registry:
    """`docker-registry serve` on 127.0.0.1, storing under `root`, its access log kept."""

    def __init__(self, root: Path, auth: str = "") -> None:
        """`auth`: the config's `auth:` section (standins/registry_token.py); none: open."""
        self.root = root
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log = root / "registry.log"
        config = root / "config.yml"
        config.write_text(
            f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root / 'store'}\n"
            f"http:\n  addr: {self.host}\n{auth}"
        )
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # it answers: 401 asks for a token
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(
                        f"the registry did not start: {self.log.read_text()}"
                    ) from None
                time.sleep(0.05)

    def push(
        self,
        layout: Path,
        name: str,
        tag: str = "1",
        *,
        all_platforms: bool = False,
        creds: str | None = None,
    ) -> str:
        """Push the layout's `tag` to `name`:`tag` here; returns the reference."""
        reference = f"{self.host}/{name}:{tag}"
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                *(["--dest-creds", creds] if creds else []),
                *(["--all"] if all_platforms else []),
                "--preserve-digests",
                f"oci:{layout}:{tag}",
                f"docker://{reference}",
            ],
            check=True,
            capture_output=True,
        )
        return reference

    def blob_gets(self, digest: str) -> int:
        """How many times the registry served blob `digest`."""
        return sum(
            1
            for line in self.log.read_text().splitlines()
            if "GET /v2/" in line and f"/blobs/{digest}" in line
        )

    def stored_blob(self, digest: str) -> Path:
        hex_digest = digest.removeprefix("sha256:")
        return (
            self.root
            / "store"
            / "docker"
            / "registry"
            / "v2"
            / "blobs"
            / "sha256"
            / hex_digest[:2]
            / hex_digest
            / "data"
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(5)


def have_image_tools() -> bool:
    """skopeo, the registry, bwrap and a static busybox (a dynamic one needs the host's libc)."""
    tools = all(shutil.which(tool) for tool in ("skopeo", "docker-registry", "bwrap"))
    return tools and BUSYBOX.exists() and not _interpreted(BUSYBOX.read_bytes())


def _interpreted(elf: bytes) -> bool:
    """Whether a 64-bit ELF file names a program interpreter (PT_INTERP): dynamically linked."""
    offset, size, count = (
        int.from_bytes(elf[a:b], "little") for a, b in ((32, 40), (54, 56), (56, 58))
    )
    return any(
        int.from_bytes(elf[offset + i * size : offset + i * size + 4], "little") == 3
        for i in range(count)
    )
