"""Unpacking an OCI layout into a root filesystem, as an attacker's layers would test it.

Why not tarfile's `data` filter: it refuses absolute symlinks, which real images are full of
(they mean a path inside the image), and it knows nothing of whiteouts. Why not `umoci unpack`:
it keeps setuid bits and device nodes as the image has them, which Shipmate must drop, and its
error when a layer escapes is no clearer than ours. So each member is applied here, by hand:

- every blob is read through a sha256 and refused when it does not match its descriptor (skopeo
  checked it in transit; this checks the copy on disk);
- a name with `..` is refused; a leading `/` is dropped (a layer's names are relative to its
  root); parents are resolved inside the target the way a chroot would (a symlink is followed
  with `/` meaning the target's root, `..` stops at it), so no write ever lands outside; the
  last component is never followed: an existing entry is replaced;
- hard links must name an existing file inside the target, found the same way;
- symlinks are written as they are (their targets mean paths inside the sandbox, never read
  here); device nodes and FIFOs are skipped; setuid, setgid and file capabilities are dropped;
- `.wh.NAME` removes NAME from lower layers, `.wh..wh..opq` empties its folder of them;
- the unpacked size and member count are capped (a layer is a decompression bomb otherwise).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bot.sandbox.image import DIGEST, ImageConfig, ImageError, parse_config, resolve_user

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_LINKS = 40
MAX_MEMBERS = 2_000_000
CHUNK = 1 << 20
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


class LayerRefused(ImageError):
    """A layer tried to write outside its target, or is not what its digest says."""


@dataclass(frozen=True)
class Unpacked:
    config: ImageConfig
    uid: int
    gid: int
    size_bytes: int
    skipped: int  # device nodes, FIFOs and other members left out


class _Hashing:
    """A file read through a sha256, for tarfile's streaming mode."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.digest.update(data)
        return data

    def check(self, expected: str) -> None:
        while self.read(CHUNK):
            pass  # tar's end-of-archive padding still counts
        if f"sha256:{self.digest.hexdigest()}" != expected:
            raise LayerRefused(f"layer {expected[:19]}…: its content does not match its digest")


def blob(layout: Path, digest: object) -> Path:
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise LayerRefused(f"not a sha256 digest: {digest!r}")
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def verified(layout: Path, digest: object) -> bytes:
    """A small blob (manifest, config), checked against its digest."""
    path = blob(layout, digest)
    data = path.read_bytes()
    if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
        raise LayerRefused(f"blob {str(digest)[:19]}…: its content does not match its digest")
    return data


def read_manifest(layout: Path) -> tuple[bytes, list[dict[str, Any]]]:
    """(the config blob, the layer descriptors) of the layout's one image."""
    try:
        index = json.loads((layout / "index.json").read_bytes())
        entries = index["manifests"]
        manifest = json.loads(verified(layout, entries[0]["digest"]))
        config = verified(layout, manifest["config"]["digest"])
        layers = manifest.get("layers") or []
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ImageError(f"the pulled image is not a valid OCI layout: {exc}") from None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise ImageError("the image manifest's layers are not a list of descriptors")
    return config, layers


def unpack(layout: Path, target: Path, *, max_bytes: int) -> Unpacked:
    """Apply the layout's layers in order onto `target` (an empty folder)."""
    config_bytes, layers = read_manifest(layout)
    config = parse_config(config_bytes)
    tree = Tree(target, max_bytes)
    for layer in layers:
        if layer.get("mediaType") == ZSTD:
            raise ImageError("zstd-compressed layers are not supported yet; use gzip layers")
        with open(blob(layout, layer.get("digest")), "rb") as raw:
            reader = _Hashing(raw)
            try:
                with tarfile.open(fileobj=reader, mode="r|*") as archive:  # type: ignore[call-overload]
                    tree.apply_layer(archive)
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                # A broken archive, or one the disk cannot hold (too deep, too long, full).
                raise LayerRefused(f"layer {str(layer.get('digest'))[:19]}…: {exc}") from None
            reader.check(str(layer.get("digest")))
    uid, gid = resolve_user(config.user, tree.read_text("etc/passwd"), tree.read_text("etc/group"))
    return Unpacked(config, uid, gid, tree.size, tree.skipped)


def clean(name: str) -> list[str]:
    """A member name's components; `..` anywhere is refused."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts or "\0" in name:
        raise LayerRefused(f"the layer names a path outside the image: {name!r}")
    return parts


@dataclass
class Tree:
    """The root being built. Only this process writes it, while it is private to the cache."""

    root: Path
    max_bytes: int
    size: int = 0
    members: int = 0
    skipped: int = 0
    created: set[str] = field(default_factory=set)

    def apply_layer(self, archive: tarfile.TarFile) -> None:
        self.created = set()
        for member in archive:
            self.members += 1
            if self.members > MAX_MEMBERS:
                raise LayerRefused(f"the image has more than {MAX_MEMBERS} files")
            self.apply(member, archive)

    def apply(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        parts = clean(member.name)
        if not parts:
            return  # the layer's own root
        *parents, base = parts
        if base == OPAQUE:
            self.opaque(parents)
            return
        if base.startswith(WHITEOUT):
            self.whiteout(parents, base[len(WHITEOUT) :])
            return
        if not (member.isdir() or member.isreg() or member.issym() or member.islnk()):
            self.skipped += 1  # devices, FIFOs: a sandbox makes none of its own either
            return
        folder = self.resolve(parents, create=True)
        dest = folder / base
        self.created.add(str(dest.relative_to(self.root)))
        mode = member.mode & 0o1777  # never setuid or setgid
        if member.isdir():
            if not _is_real_dir(dest):
                _remove(dest)
                dest.mkdir()
            dest.chmod(mode | 0o700)
            return
        _remove(dest)
        if member.issym():
            os.symlink(member.linkname, dest)
        elif member.islnk():
            os.link(self.existing(member.linkname), dest, follow_symlinks=False)
        else:
            self.write(dest, member, archive, mode | 0o600)
        os.utime(dest, (member.mtime, member.mtime), follow_symlinks=False)

    def write(
        self, dest: Path, member: tarfile.TarInfo, archive: tarfile.TarFile, mode: int
    ) -> None:
        self.size += member.size
        if self.size > self.max_bytes:
            raise LayerRefused(f"the image unpacks to more than {self.max_bytes >> 20} MiB")
        source = archive.extractfile(member)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(dest, flags, 0o600)
        with os.fdopen(fd, "wb") as out:
            if source is not None:
                shutil.copyfileobj(source, out, CHUNK)
            os.fchmod(out.fileno(), mode)

    def resolve(self, parts: list[str], *, create: bool) -> Path:
        """The real folder `parts` names inside the root, following symlinks as a chroot
        would; folders are made when `create`. Raises when it is not there or loops."""
        pending, done, links = list(parts), list[str](), 0
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            path = self.root.joinpath(*done, part)
            try:
                info = path.lstat()
            except FileNotFoundError:
                if not create:
                    raise
                path.mkdir(0o755)
                done.append(part)
                continue
            if stat.S_ISLNK(info.st_mode):
                links += 1
                if links > MAX_LINKS:
                    raise LayerRefused(f"too many symlinks under {'/'.join(parts)!r}") from None
                target = os.readlink(path)
                if target.startswith("/"):
                    done = []
                pending = target.split("/") + pending
            elif stat.S_ISDIR(info.st_mode):
                done.append(part)
            else:
                raise LayerRefused(f"{'/'.join(parts)!r}: {'/'.join([*done, part])} is a file")
        return self.root.joinpath(*done)

    def existing(self, linkname: str) -> Path:
        """A hard link's source: an existing file (or symlink) inside the root."""
        *parents, base = clean(linkname) or [""]
        try:
            source = self.resolve(parents, create=False) / base
            info = source.lstat()
        except (FileNotFoundError, NotADirectoryError):
            raise LayerRefused(f"a hard link names a file not in the image: {linkname!r}") from None
        if not base or stat.S_ISDIR(info.st_mode):
            raise LayerRefused(f"a hard link names a folder: {linkname!r}")
        return source

    def whiteout(self, parents: list[str], name: str) -> None:
        if name in ("", ".", ".."):
            raise LayerRefused(f"a whiteout names no file: {'/'.join(parents)}")
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # nothing to hide
            _remove(self.resolve(parents, create=False) / name)

    def opaque(self, parents: list[str]) -> None:
        folder = self.resolve(parents, create=True)
        for entry in os.scandir(folder):
            path = Path(entry.path)
            if str(path.relative_to(self.root)) not in self.created:
                _remove(path)

    def read_text(self, name: str) -> str:
        """A small file of the image (its /etc/passwd), symlinks followed inside the root."""
        parts = name.split("/")
        try:
            for _ in range(MAX_LINKS):
                *parents, base = parts
                folder = self.resolve(parents, create=False)
                path = folder / base
                if base in ("", ".", "..") or not path.is_symlink():
                    break
                target = os.readlink(path)
                inside = () if target.startswith("/") else folder.relative_to(self.root).parts
                parts = [*inside, *target.split("/")]
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as file:
                return file.read(1 << 20).decode("utf-8", "replace")
        except (OSError, LayerRefused):
            return ""


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def _remove(path: Path) -> None:
    """Remove whatever is at `path` (a folder with everything in it), never following it."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()
