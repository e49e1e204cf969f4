"""Image references, the operator's registry policy, the platform picked from an index and the
image's user: pure, no registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, RepoConfig, RepoConfigError, Settings, parse_repo_config
from bot.sandbox.environment import Environments, devcontainer_image, read_devcontainer
from bot.sandbox.image import (
    ImageError,
    ImageReference,
    RegistryPolicy,
    host_platform,
    parse_config,
    parse_reference,
    pick_platform,
    registry_host,
    resolve_user,
)
from bot.sandbox.image_pull import checked

DIGEST = "sha256:" + "ab" * 32
pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("python:3.12-bookworm", ImageReference("docker.io", "library/python", "3.12-bookworm")),
        ("node", ImageReference("docker.io", "library/node", "latest")),
        ("ghcr.io/org/ci:1", ImageReference("ghcr.io", "org/ci", "1")),
        ("index.docker.io/team/x", ImageReference("docker.io", "team/x", "latest")),
        (
            f"registry.example.com:5000/team/node@{DIGEST}",
            ImageReference("registry.example.com:5000", "team/node", None, DIGEST),
        ),
        (f"localhost/a:b@{DIGEST}", ImageReference("localhost", "a", "b", DIGEST)),
    ],
)
def test_references_parse_with_docker_hubs_defaults(text: str, expected: ImageReference) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "--src-creds=me:pw",  # read as an option by skopeo
        "Python:3",  # repositories are lowercase
        "a b",
        "x@sha256:short",
        "x@md5:" + "0" * 32,
        "host:5000/a:b:c",
        "evil.com/../x",
        "ghcr.io/org/ci:" + "t" * 200,
    ],
)
def test_malformed_references_are_refused(text: str) -> None:
    with pytest.raises(ImageError):
        parse_reference(text)


def test_the_operator_restricts_registries_and_marks_insecure_ones() -> None:
    policy = RegistryPolicy(allowed=["ghcr.io", "127.0.0.1:5000"], insecure=["127.0.0.1:5000"])
    policy.check(parse_reference("ghcr.io/org/ci:1"))
    with pytest.raises(ImageError, match="SHIPMATE_ALLOWED_REGISTRIES"):
        policy.check(parse_reference("python:3.12"))
    assert policy.is_insecure(parse_reference("127.0.0.1:5000/a"))
    assert not policy.is_insecure(parse_reference("127.0.0.1:5001/a"))
    assert not policy.is_insecure(parse_reference("ghcr.io/org/ci"))
    RegistryPolicy().check(parse_reference("python:3.12"))  # no list: any registry


def test_the_platform_is_picked_from_an_index() -> None:
    amd, arm, arm7 = ("sha256:" + c * 64 for c in "123")
    index = {
        "manifests": [
            {"digest": arm7, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
            {"digest": arm, "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": amd, "platform": {"os": "linux", "architecture": "amd64"}},
            {
                "digest": "sha256:" + "4" * 64,
                "platform": {"os": "windows", "architecture": "amd64"},
            },
        ]
    }
    assert pick_platform(index, ("linux", "amd64")) == amd
    assert pick_platform(index, ("linux", "arm64")) == arm
    with pytest.raises(ImageError, match="no linux/riscv64 variant"):
        pick_platform(index, ("linux", "riscv64"))
    assert host_platform("x86_64") == ("linux", "amd64")
    assert host_platform("aarch64") == ("linux", "arm64")


def test_the_config_keeps_env_workdir_and_user() -> None:
    config = parse_config(
        b'{"config": {"Env": ["PATH=/usr/local/bin:/usr/bin", "A=b=c", "junk"],'
        b' "WorkingDir": "/app", "User": "node"}}'
    )
    assert config.env == (("PATH", "/usr/local/bin:/usr/bin"), ("A", "b=c"))
    assert (config.workdir, config.user) == ("/app", "node")
    assert parse_config(b'{"config": {"WorkingDir": "relative"}}').workdir == ""
    with pytest.raises(ImageError):
        parse_config(b"not json")


def test_users_resolve_from_the_images_tables() -> None:
    passwd = "root:x:0:0::/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n"
    group = "root:x:0:\nstaff:x:50:node\n"
    assert resolve_user("", passwd, group) == (0, 0)
    assert resolve_user("node", passwd, group) == (1000, 1000)
    assert resolve_user("node:staff", passwd, group) == (1000, 50)
    assert resolve_user("1000", passwd, group) == (1000, 1000)
    assert resolve_user("4242:7", passwd, group) == (4242, 7)
    with pytest.raises(ImageError, match="not in its /etc/passwd"):
        resolve_user("ghost", passwd, group)
    with pytest.raises(ImageError, match="id range"):
        resolve_user("99999999", passwd, group)


def test_devcontainer_files_name_their_image_with_comments_and_trailing_commas() -> None:
    text = '{\n  // base\n  "name": "a // not a comment",\n  /* block */ "image": "ghcr.io/o/dev:1",\n}\n'
    assert devcontainer_image(text) == "ghcr.io/o/dev:1"
    with pytest.raises(ImageError, match="prebuilt images only"):
        devcontainer_image('{"build": {"dockerfile": "Dockerfile"}}')
    with pytest.raises(ImageError, match="names no `image`"):
        devcontainer_image("{}")


def test_a_devcontainer_path_outside_the_checkout_is_refused(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / ".devcontainer").mkdir(parents=True)
    (tree / ".devcontainer" / "devcontainer.json").write_text('{"image": "python:3.12"}')
    (tmp_path / "outside.json").write_text('{"image": "evil:1"}')
    (tree / "link.json").symlink_to(tmp_path / "outside.json")
    assert read_devcontainer(tree, ".devcontainer/devcontainer.json").startswith("{")
    for path in ("../outside.json", "/etc/passwd", "link.json"):
        with pytest.raises(ImageError, match="not a path inside the repository"):
            read_devcontainer(tree, path)


def test_the_repository_names_one_environment_and_a_valid_reference() -> None:
    assert parse_repo_config("environment:\n  image: node:22\n").environment is not None
    for text in (
        "environment:\n  image: node:22\n  devcontainer: a.json\n",
        "environment: {}\n",
        "environment:\n  image: '--src-creds=x'\n",
        "environment:\n  dockerfile: Dockerfile\n",
    ):
        with pytest.raises(RepoConfigError, match="environment"):
            parse_repo_config(text)


def test_the_operator_sets_the_default_image_and_registries(tmp_path: Path) -> None:
    settings = Settings.load(
        default_image="python:3.12-bookworm",
        allowed_registries="docker.io, ghcr.io",
        insecure_registries="127.0.0.1:5000",
        data_dir=tmp_path,
    )
    environments = Environments.from_settings(settings)
    assert environments.default == "python:3.12-bookworm"
    assert environments.store.policy.allowed == ("docker.io", "ghcr.io")
    assert environments.store.policy.is_insecure(parse_reference("127.0.0.1:5000/a"))
    assert environments.reference(RepoConfig(), tmp_path) == "python:3.12-bookworm"
    with pytest.raises(ConfigError, match="SHIPMATE_DEFAULT_IMAGE"):
        Settings.load(default_image="ghcr.io/o/x", allowed_registries="docker.io")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("python:3", ("registry-1.docker.io", 443)),
        ("ghcr.io/o/x", ("ghcr.io", 443)),
        ("10.0.0.5:5000/x", ("10.0.0.5", 5000)),
        ("[::1]:5000/x", ("::1", 5000)),
    ],
)
def test_where_a_registry_is_reached(text: str, where: tuple[str, int]) -> None:
    assert registry_host(parse_reference(text)) == where


def test_a_repository_cannot_point_the_host_at_internal_addresses() -> None:
    policy = RegistryPolicy(insecure=["10.0.0.5:5000"])
    for address in ("127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "fd00::1", "192.168.0.1"):
        with pytest.raises(ImageError, match="private address"):
            policy.check_addresses(parse_reference("evil.example/x"), ["140.82.112.3", address])
    policy.check_addresses(parse_reference("ghcr.io/o/x"), ["140.82.112.3"])
    policy.check_addresses(parse_reference("10.0.0.5:5000/x"), ["10.0.0.5"])  # the operator's


async def test_a_registry_name_resolving_to_loopback_is_refused_before_any_request() -> None:
    with pytest.raises(ImageError, match="private address"):
        await checked(parse_reference("localhost:5999/x"), RegistryPolicy())


def test_the_cli_offers_only_backends_that_exist(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import _parser

    args = _parser().parse_args(["sandbox", "exec", "--image", "node:22", "--", "node", "-v"])
    assert (args.backend, args.image) == ("auto", "node:22")
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(["sandbox", "exec", "--backend", "docker", "--", "true"])
    assert exited.value.code == 2 and "invalid choice: 'docker'" in capsys.readouterr().err
    assert _parser().parse_args(["image", "prune", "--all"]).all
