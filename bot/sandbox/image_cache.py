"""The image cache: one unpacked root filesystem per image digest under the data dir, shared by
every sandbox, evicted least-recently-used past a size limit.

    <root>/rootfs/<hex>/tree        the unpacked rootfs (only ever an overlay's lower layer)
    <root>/rootfs/<hex>/image.json  its config; its mtime is the entry's last use
    <root>/locks/<hex>.use          shared while a sandbox uses the entry, exclusive to evict it
    <root>/locks/<hex>.pull         exclusive while one task pulls it: the others wait, then use it
    <root>/tmp/                     pulls in progress (renamed into rootfs/ when complete)
    <root>/refs.json                reference -> digest, last resolved (for `shipmate image ls`)

The locks are flock(2)s, so they hold between tasks of one worker and between processes alike,
and vanish with a process that dies holding them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Collection
from dataclasses import asdict, dataclass
from pathlib import Path

import structlog

from bot.sandbox import image_pull
from bot.sandbox.base import ImageRoot
from bot.sandbox.image import (
    ImageConfig,
    ImageError,
    ImageReference,
    RegistryPolicy,
    parse_reference,
)
from bot.sandbox.image_unpack import unpack

log = structlog.get_logger("shipmate.image")
STALE_TMP_SECONDS = 86400.0


@dataclass(frozen=True)
class CachedImage:
    digest: str
    reference: str
    size_bytes: int
    last_used: float
    config: ImageConfig
    uid: int
    gid: int
    tree: Path

    def root(self) -> ImageRoot:
        config = self.config
        return ImageRoot(self.tree, self.digest, config.env, config.workdir, self.uid, self.gid)


@dataclass(frozen=True)
class Pulled:
    image: CachedImage
    pulled: bool  # False: it was in the cache already


class ImageStore:
    def __init__(
        self,
        root: Path,
        policy: RegistryPolicy,
        *,
        limit_bytes: int,
        wanted_platform: tuple[str, str] | None = None,
    ) -> None:
        self.root = root
        self.policy = policy
        self.limit_bytes = limit_bytes
        self.wanted_platform = wanted_platform
        for name in ("rootfs", "locks", "tmp", "home"):
            (root / name).mkdir(parents=True, exist_ok=True)

    async def pull(self, text: str) -> Pulled:
        """Make sure the image `text` names is in the cache."""
        fd, pulled = await self._acquire(text)
        os.close(fd)
        return pulled

    @contextlib.asynccontextmanager
    async def use(self, text: str) -> AsyncIterator[ImageRoot]:
        """The image's root, pulled first when needed, kept from eviction until the block ends."""
        fd, pulled = await self._acquire(text)
        try:
            yield pulled.image.root()
        finally:
            os.close(fd)

    async def _acquire(self, text: str) -> tuple[int, Pulled]:
        reference = parse_reference(text)
        self.policy.check(reference)
        digest = await self._digest(reference)
        hex_digest = digest.removeprefix("sha256:")
        use = await asyncio.to_thread(self._lock, f"{hex_digest}.use", fcntl.LOCK_SH)
        try:
            cached = self._read(hex_digest)
            pulled = cached is None
            if cached is None:
                pull = await asyncio.to_thread(self._lock, f"{hex_digest}.pull", fcntl.LOCK_EX)
                try:
                    cached = self._read(hex_digest)
                    pulled = cached is None
                    if cached is None:
                        cached = await self._fetch(str(reference), reference, digest)
                finally:
                    os.close(pull)
            os.utime(cached.tree.parent / "image.json")
            self._remember(str(reference), digest)
            await asyncio.to_thread(self.evict, self.limit_bytes)
        except BaseException:
            os.close(use)
            raise
        return use, Pulled(cached, pulled)

    async def _digest(self, reference: ImageReference) -> str:
        """The platform manifest's digest: asked of the registry (a tag moves), or, when the
        registry cannot be reached, the one this reference had last time if it is still here."""
        if reference.digest and self._read(reference.digest.removeprefix("sha256:")) is not None:
            return reference.digest
        home = self.root / "home"
        try:
            return await image_pull.resolve(reference, self.policy, home, self.wanted_platform)
        except ImageError as exc:
            known = self._refs().get(str(reference))
            if known and self._read(known.removeprefix("sha256:")) is not None:
                log.warning("image.offline", reference=str(reference), digest=known, error=str(exc))
                return known
            raise ImageError(f"{reference}: {exc}") from None

    async def _fetch(self, name: str, reference: ImageReference, digest: str) -> CachedImage:
        hex_digest = digest.removeprefix("sha256:")
        work = self.root / "tmp" / f"{hex_digest[:16]}-{uuid.uuid4().hex[:8]}"
        (work / "tree").mkdir(parents=True)
        started = time.monotonic()
        try:
            await image_pull.copy(reference, digest, self.policy, work / "layout")
            unpacked = await asyncio.to_thread(
                unpack, work / "layout", work / "tree", max_bytes=self.limit_bytes
            )
            shutil.rmtree(work / "layout")
            meta = {
                "digest": digest,
                "reference": name,
                "size_bytes": unpacked.size_bytes,
                "config": asdict(unpacked.config),
                "uid": unpacked.uid,
                "gid": unpacked.gid,
            }
            (work / "image.json").write_text(json.dumps(meta))
            os.rename(work, self.root / "rootfs" / hex_digest)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        log.info(
            "image.pulled",
            reference=name,
            digest=digest,
            size_bytes=unpacked.size_bytes,
            skipped=unpacked.skipped,
            seconds=round(time.monotonic() - started, 3),
        )
        cached = self._read(hex_digest)
        assert cached is not None
        return cached

    def _lock(self, name: str, kind: int) -> int:
        fd = os.open(self.root / "locks" / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, kind)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _read(self, hex_digest: str) -> CachedImage | None:
        meta_path = self.root / "rootfs" / hex_digest / "image.json"
        try:
            meta = json.loads(meta_path.read_text())
            last_used = meta_path.stat().st_mtime
            config = meta["config"]
            return CachedImage(
                digest=meta["digest"],
                reference=meta["reference"],
                size_bytes=int(meta["size_bytes"]),
                last_used=last_used,
                config=ImageConfig(
                    tuple((str(k), str(v)) for k, v in config["env"]),
                    str(config["workdir"]),
                    str(config["user"]),
                ),
                uid=int(meta["uid"]),
                gid=int(meta["gid"]),
                tree=meta_path.parent / "tree",
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def images(self) -> list[CachedImage]:
        """Every cached image, most recently used first."""
        found = [self._read(entry.name) for entry in os.scandir(self.root / "rootfs")]
        return sorted((i for i in found if i is not None), key=lambda i: -i.last_used)

    def evict(self, limit_bytes: int, keep: Collection[str] = ()) -> list[str]:
        """Remove least-recently-used images not in use until the rest fit in `limit_bytes`;
        returns the digests removed."""
        images = self.images()
        total = sum(image.size_bytes for image in images)
        removed: list[str] = []
        for image in reversed(images):
            if total <= limit_bytes:
                break
            if image.digest in keep or not self._remove(image):
                continue
            total -= image.size_bytes
            removed.append(image.digest)
        self._clean_tmp()
        return removed

    def _remove(self, image: CachedImage) -> bool:
        hex_digest = image.digest.removeprefix("sha256:")
        try:
            fd = self._lock(f"{hex_digest}.use", fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a sandbox uses it (or a task is pulling it)
        try:
            doomed = self.root / "tmp" / f"evicted-{hex_digest[:16]}-{uuid.uuid4().hex[:8]}"
            os.rename(image.tree.parent, doomed)
        finally:
            os.close(fd)
        shutil.rmtree(doomed, ignore_errors=True)
        log.info("image.evicted", digest=image.digest, size_bytes=image.size_bytes)
        return True

    def _clean_tmp(self) -> None:
        """Pulls a crashed process left half-way."""
        for entry in os.scandir(self.root / "tmp"):
            with contextlib.suppress(OSError):
                if time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_TMP_SECONDS:
                    shutil.rmtree(entry.path, ignore_errors=True)

    def _refs(self) -> dict[str, str]:
        try:
            refs = json.loads((self.root / "refs.json").read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in refs.items()} if isinstance(refs, dict) else {}

    def _remember(self, reference: str, digest: str) -> None:
        if self._refs().get(reference) == digest:
            return
        fd = self._lock("refs", fcntl.LOCK_EX)
        try:
            refs = self._refs()
            refs[reference] = digest
            temporary = self.root / f"refs.json.{uuid.uuid4().hex[:8]}"
            temporary.write_text(json.dumps(refs, indent=1, sort_keys=True))
            os.replace(temporary, self.root / "refs.json")
        finally:
            os.close(fd)

    def references(self) -> dict[str, list[str]]:
        """digest -> the references last resolved to it."""
        table: dict[str, list[str]] = {}
        for reference, digest in self._refs().items():
            table.setdefault(digest, []).append(reference)
        return table
