"""Which image a task's sandbox runs on: the repository's `environment:` (an image, or a
devcontainer.json's `image`), else the operator's SHIPMATE_DEFAULT_IMAGE, else none (the
host's system folders) — and the image cache it comes from, made from the settings."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bot.config import RepoConfig, Settings
from bot.sandbox.base import ImageRoot
from bot.sandbox.image import ImageError, RegistryPolicy
from bot.sandbox.image_cache import ImageStore

# A string, or a comment (devcontainer.json is JSON with comments and trailing commas).
_COMMENT = re.compile(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/', re.S)
_TRAILING_COMMA = re.compile(r'("(?:\\.|[^"\\])*")|,(?=\s*[}\]])', re.S)
DEVCONTAINER_BYTES = 256 * 1024


def devcontainer_image(text: str) -> str:
    """The `image` of a devcontainer.json's text."""
    for pattern in (_COMMENT, _TRAILING_COMMA):
        text = pattern.sub(lambda found: found.group(1) or "", text)
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ImageError(f"the devcontainer file is not valid JSON: {exc}") from None
    image = document.get("image") if isinstance(document, dict) else None
    if isinstance(image, str) and image.strip():
        return image.strip()
    if isinstance(document, dict) and ("build" in document or "dockerFile" in document):
        raise ImageError(
            "the devcontainer file builds its image (build/dockerFile); Shipmate runs prebuilt "
            "images only: name one with `image`"
        )
    raise ImageError("the devcontainer file names no `image`")


def read_devcontainer(tree: Path, path: str) -> str:
    """The devcontainer file at `path` in the checkout, never one outside it."""
    root = tree.resolve()
    candidate = (root / path).resolve()
    if path.startswith("/") or not candidate.is_relative_to(root):
        raise ImageError(f"environment.devcontainer: {path!r} is not a path inside the repository")
    try:
        with candidate.open("rb") as file:
            return file.read(DEVCONTAINER_BYTES).decode("utf-8", "replace")
    except OSError as exc:
        raise ImageError(f"environment.devcontainer: cannot read {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class Environments:
    store: ImageStore
    default: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Environments:
        policy = RegistryPolicy(
            allowed=tuple(settings.allowed_registries),
            insecure=tuple(settings.insecure_registries),
            auth_file=str(settings.registry_auth_file) if settings.registry_auth_file else None,
        )
        limit = settings.image_cache_mib * 1024 * 1024
        store = ImageStore(Path(settings.data_dir).resolve() / "images", policy, limit_bytes=limit)
        return cls(store, settings.default_image or None)

    def reference(self, config: RepoConfig, tree: Path) -> str | None:
        wanted = config.environment
        if wanted is None:
            return self.default
        if wanted.image is not None:
            return wanted.image
        assert wanted.devcontainer is not None
        return devcontainer_image(read_devcontainer(tree, wanted.devcontainer))

    @contextlib.asynccontextmanager
    async def root(self, config: RepoConfig, tree: Path) -> AsyncIterator[ImageRoot | None]:
        """The image's root for this task, held in the cache until the block ends; None when
        the task runs on the host's folders."""
        reference = self.reference(config, tree)
        if reference is None:
            yield None
            return
        async with self.store.use(reference) as image:
            yield image
