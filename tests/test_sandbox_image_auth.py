"""Pulling from a registry that wants bearer tokens, as Docker Hub and GHCR do: anonymously for
a public repository, with the operator's credentials file for a private one, and never with
credentials the operator did not configure for Shipmate."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.sandbox.image import ImageError, RegistryPolicy
from bot.sandbox.image_cache import ImageStore
from standins.registry import Entry, Layout, Registry, have_image_tools
from standins.registry_token import TokenService

pytestmark = [
    pytest.mark.skipif(not have_image_tools(), reason="skopeo, docker-registry or bwrap missing"),
    pytest.mark.anyio,
]
USER, PASSWORD = "ci-bot", "s3cret-registry-password"


@dataclass(frozen=True)
class Secured:
    registry: Registry
    tokens: TokenService
    public: str
    private: str
    root: Path

    def store(self, name: str, auth_file: Path | None = None) -> ImageStore:
        policy = RegistryPolicy(
            insecure=[self.registry.host], auth_file=str(auth_file) if auth_file else None
        )
        return ImageStore(self.root / name, policy, limit_bytes=1 << 26)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("secured")
    tokens = TokenService(root, USER, PASSWORD)
    registry = Registry(root, tokens.registry_auth())
    try:
        layout = Layout(root / "layout")
        layout.tag(layout.image([[Entry("hello", data=b"from a token-guarded registry")]]))
        public = registry.push(layout.path, "public/hello", creds=f"{USER}:{PASSWORD}")
        private = registry.push(layout.path, "team/hello", creds=f"{USER}:{PASSWORD}")
        yield Secured(registry, tokens, public, private, root)
    finally:
        registry.stop()
        tokens.stop()


async def test_a_public_repository_is_pulled_with_an_anonymous_token(secured: Secured) -> None:
    secured.tokens.requests.clear()
    pulled = await secured.store("anonymous").pull(secured.public)
    assert (pulled.image.tree / "hello").read_bytes() == b"from a token-guarded registry"
    assert secured.tokens.requests and all(who is None for _, who in secured.tokens.requests)
    assert any("public/hello:pull" in scope for scope, _ in secured.tokens.requests)


async def test_a_private_repository_needs_the_operators_credentials(
    secured: Secured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A login of the host's own user is not Shipmate's to use.
    docker = tmp_path / "home" / ".docker"
    docker.mkdir(parents=True)
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    config = json.dumps({"auths": {secured.registry.host: {"auth": auth}}})
    (docker / "config.json").write_text(config)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(docker / "config.json"))
    with pytest.raises(ImageError, match=r"(?i)unauthorized|denied|authentication"):
        await secured.store("nocreds").pull(secured.private)

    auth_file = tmp_path / "shipmate-auth.json"
    auth_file.write_text(config)
    secured.tokens.requests.clear()
    pulled = await secured.store("creds", auth_file).pull(secured.private)
    assert (pulled.image.tree / "hello").exists()
    assert ("repository:team/hello:pull", USER) in secured.tokens.requests
    wrong = tmp_path / "wrong.json"
    bad = base64.b64encode(f"{USER}:nope".encode()).decode()
    wrong.write_text(json.dumps({"auths": {secured.registry.host: {"auth": bad}}}))
    with pytest.raises(ImageError):
        await secured.store("wrong", wrong).pull(secured.private)
