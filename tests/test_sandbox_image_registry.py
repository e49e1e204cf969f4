"""Images end to end: a real registry on loopback (Debian's docker-registry), images built and
pushed here with skopeo, pulled through bot/sandbox/image_cache.py and run in the sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.agent.budget import Budget
from bot.agent.prompts import Brief
from bot.agent.transcript import Transcript
from bot.config import RepoConfig
from bot.runs.execute import Inputs, execute
from bot.runs.execution import Execution
from bot.sandbox import open_sandbox
from bot.sandbox.base import SandboxSpec
from bot.sandbox.checkout import CheckoutCache, git
from bot.sandbox.environment import Environments
from bot.sandbox.image import ImageError, RegistryPolicy
from bot.sandbox.image_cache import ImageStore
from bot.sandbox.image_unpack import LayerRefused
from bot.sandbox.setup import DependencyCache, run_setup
from standins.registry import Entry, Layout, Registry, busybox_layer, have_image_tools
from tests.test_sandbox_execute import PlanOnly

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(not have_image_tools(), reason="skopeo, docker-registry or bwrap missing"),
    pytest.mark.anyio,
]
MIB = 1 << 20
PASSWD = b"root:x:0:0::/root:/bin/sh\ntester:x:1234:1234::/home/tester:/bin/sh\n"


@dataclass(frozen=True)
class Images:
    registry: Registry
    tools: str  # busybox, a tool only the image has, a non-root user, Env and WorkingDir
    tools_layer: str  # the digest of its layer
    small: list[str]  # three ~1 MiB images, for eviction
    multi: str  # an index with amd64 and arm64 variants
    tampered: str  # a layer changed in the registry's storage after the push
    malicious: str  # a layer naming ../
    hostile: str  # /tmp, /home, /etc/ssl, /dev, /proc, /workspace, WorkingDir: links to the host
    scratch: Path

    def policy(self) -> RegistryPolicy:
        return RegistryPolicy(insecure=[self.registry.host])

    def store(self, name: str, limit_bytes: int = 512 * MIB, **extra: object) -> ImageStore:
        return ImageStore(self.scratch / name, self.policy(), limit_bytes=limit_bytes, **extra)  # type: ignore[arg-type]


def _push(
    registry: Registry,
    root: Path,
    name: str,
    layers: list[list[Entry]],
    config: dict[str, object] | None = None,
) -> tuple[str, str]:
    layout = Layout(root / name)
    descriptor = layout.image(layers, config)
    layout.tag(descriptor)
    manifest = json.loads((layout.path / "blobs/sha256" / descriptor["digest"][7:]).read_bytes())
    return registry.push(layout.path, f"test/{name}"), manifest["layers"][-1]["digest"]


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    root = tmp_path_factory.mktemp("images")
    registry = Registry(root)
    try:
        tools_layers = [
            busybox_layer([Entry("etc/passwd", data=PASSWD)]),
            [
                Entry(
                    "opt/tools/only-in-image",
                    data=b"#!/bin/sh\necho only-in-image: $0\n",
                    mode=0o755,
                )
            ],
        ]
        config = {
            "Env": ["PATH=/opt/tools:/bin", "IMAGE_FLAVOUR=test"],
            "WorkingDir": "/src",
            "User": "tester",
        }
        tools, tools_layer = _push(registry, root, "tools", tools_layers, config)
        small = [
            _push(registry, root, f"small{i}", [[Entry("data", data=os.urandom(MIB))]])[0]
            for i in range(3)
        ]
        layout = Layout(root / "multi")
        variants = [
            layout.image([[Entry("arch", data=arch.encode())]], arch=arch)
            for arch in ("arm64", "amd64")
        ]
        layout.tag(layout.index(variants))
        multi = registry.push(layout.path, "test/multi", all_platforms=True)
        tampered, tampered_layer = _push(
            registry, root, "tampered", [[Entry("x", data=b"x" * 4096)]]
        )
        blob = registry.stored_blob(tampered_layer)
        data = bytearray(blob.read_bytes())
        data[-30] ^= 0xFF
        blob.write_bytes(bytes(data))
        malicious, _ = _push(registry, root, "malicious", [[Entry("../escaped", data=b"x")]])
        victim = root / "victim"
        victim.mkdir()
        links = ["tmp", "home", "etc/ssl", "dev", "proc", "workspace", "src"]
        hostile_layer = [
            Entry(name, "symlink", link=str(victim))
            for name in links
            if name != "tmp"  # busybox_layer has a real /tmp: replaced below
        ]
        hostile, _ = _push(
            registry,
            root,
            "hostile",
            [busybox_layer(), [Entry("tmp", "symlink", link=str(victim)), *hostile_layer]],
            {"WorkingDir": "/src"},
        )
        yield Images(registry, tools, tools_layer, small, multi, tampered, malicious, hostile, root)
    finally:
        registry.stop()


async def test_a_tool_only_in_the_image_runs_and_the_hosts_are_invisible(
    images: Images, tmp_path: Path
) -> None:
    (tmp_path / "marker.txt").write_text("the checkout\n")
    store = images.store("run")
    async with store.use(images.tools) as root:
        spec = SandboxSpec(
            workspace=tmp_path,
            image=root,
            allow_hosts=("example.com",),
            secrets={"API_TOKEN": ("real-token-value", "example.com")},
        )
        async with open_sandbox(spec) as sandbox:
            token = await sandbox.exec(["sh", "-c", "echo $API_TOKEN"])
            result = await sandbox.exec(
                [
                    "sh",
                    "-c",
                    "only-in-image; id -u; id -g; pwd; cat marker.txt; echo $PATH $IMAGE_FLAVOUR;"
                    " ls /usr/bin/python3 /usr/bin/git /etc/hostname 2>&1;"
                    " grep -c 'BEGIN CERTIFICATE' $SSL_CERT_FILE; touch /opt/tools/new && echo writable",
                ]
            )
    out = result.stdout.decode()
    lines = out.splitlines()
    assert lines[0] == "only-in-image: /opt/tools/only-in-image"
    assert lines[1:6] == ["1234", "1234", "/src", "the checkout", "/opt/tools:/bin test"]
    assert out.count("No such file or directory") == 3  # nothing of the host's /usr or /etc
    assert int(lines[-2]) >= 1  # the install's CA, trusted inside
    assert lines[-1] == "writable"  # the task's own overlay over the shared rootfs
    assert not (root.rootfs / "opt/tools/new").exists()
    assert token.stdout.startswith(b"SHIPMATE_PLACEHOLDER_")  # the proxy swaps in the real one


async def test_setup_runs_in_the_image_and_the_dependency_cache_works_the_same(
    images: Images, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "requirements.txt").write_text("dep==1\n")
    cache = DependencyCache(tmp_path / "deps")
    store = images.store("setup")
    async with store.use(images.tools) as root:
        first = cache.mount("repo", workspace)
        layered, rw = first.binds()
        spec = SandboxSpec(workspace=workspace, image=root, layered_binds=layered, rw_binds=rw)
        async with open_sandbox(spec) as sandbox:
            results = await run_setup(sandbox, ["only-in-image > $HOME/.cache/filled"])
        assert results[-1].exit_code == 0, results[-1].stderr
        first.complete()
        second = cache.mount("repo", workspace)
        assert not second.writable
        layered, rw = second.binds()
        spec = SandboxSpec(workspace=workspace, image=root, layered_binds=layered, rw_binds=rw)
        async with open_sandbox(spec) as sandbox:
            shown = await sandbox.exec(["cat", "/home/sandbox/.cache/filled"])
    assert shown.stdout.decode().startswith("only-in-image")


async def test_a_wrong_digest_is_refused(images: Images) -> None:
    store = images.store("tampered")
    with pytest.raises(ImageError, match=r"[Dd]igest did not match"):
        await store.pull(images.tampered)
    assert store.images() == []
    assert os.listdir(store.root / "tmp") == []
    wrong = images.tools.rsplit(":", 1)[0] + "@sha256:" + "0" * 64
    with pytest.raises(ImageError):
        await store.pull(wrong)


async def test_a_malicious_layer_is_refused_and_leaves_nothing(images: Images) -> None:
    store = images.store("malicious")
    with pytest.raises(LayerRefused, match="outside the image"):
        await store.pull(images.malicious)
    assert store.images() == [] and os.listdir(store.root / "tmp") == []
    assert not (store.root / "tmp" / "escaped").exists()


async def test_tasks_pulling_one_image_at_once_pull_it_once(images: Images) -> None:
    before = images.registry.blob_gets(images.tools_layer)
    stores = [images.store("once"), images.store("once")]  # two workers sharing a data dir
    pulls = await asyncio.gather(*(store.pull(images.tools) for store in stores * 2))
    assert sorted(pull.pulled for pull in pulls) == [False, False, False, True]
    assert len({pull.image.tree for pull in pulls}) == 1
    assert images.registry.blob_gets(images.tools_layer) == before + 1


async def test_least_recently_used_images_are_evicted_but_not_while_in_use(images: Images) -> None:
    store = images.store("evict", limit_bytes=int(2.5 * MIB))
    first, second, third = images.small
    async with store.use(first):
        await store.pull(second)
        await store.pull(third)  # over the limit: `second` is the oldest not in use
        kept = {image.reference for image in store.images()}
        assert kept == {first, third}
    await store.pull(second)  # now `first` is the least recently used, and free
    assert {image.reference for image in store.images()} == {second, third}


async def test_plain_http_only_for_registries_the_operator_lists(images: Images) -> None:
    # Allowed, but not marked insecure: HTTPS only, which this registry does not speak.
    allowed = RegistryPolicy(allowed=[images.registry.host])
    strict = ImageStore(images.scratch / "strict", allowed, limit_bytes=MIB)
    with pytest.raises(ImageError, match="http"):
        await strict.pull(images.tools)
    before = images.registry.log.read_text()
    unnamed = ImageStore(images.scratch / "unnamed", RegistryPolicy(), limit_bytes=MIB)
    with pytest.raises(ImageError, match="private address"):
        await unnamed.pull(images.tools)  # a repository may not point the host at loopback
    assert images.registry.log.read_text() == before
    walled = RegistryPolicy(allowed=["ghcr.io"], insecure=[images.registry.host])
    with pytest.raises(ImageError, match="not among those the operator allows"):
        await ImageStore(images.scratch / "walled", walled, limit_bytes=MIB).pull(images.tools)


async def test_the_platform_is_picked_from_an_index(images: Images) -> None:
    arm = images.store("arm", wanted_platform=("linux", "arm64"))
    pulled = await arm.pull(images.multi)
    assert (pulled.image.tree / "arch").read_text() == "arm64"
    amd = images.store("amd", wanted_platform=("linux", "amd64"))
    assert ((await amd.pull(images.multi)).image.tree / "arch").read_text() == "amd64"


def _shipmate(images: Images, data_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "SHIPMATE_DATA_DIR": str(data_dir),
        "SHIPMATE_INSECURE_REGISTRIES": images.registry.host,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_runs_a_command_on_an_image_and_manages_the_cache(
    images: Images, tmp_path: Path
) -> None:
    ran = _shipmate(
        images, tmp_path, "sandbox", "exec", "--image", images.tools, "--", "only-in-image"
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "only-in-image: /opt/tools/only-in-image\n"
    on_host = _shipmate(
        images, tmp_path, "sandbox", "exec", "--", "sh", "-c", "command -v only-in-image"
    )
    assert on_host.returncode == 127  # the host's folders do not have it
    pulled = _shipmate(images, tmp_path, "image", "pull", images.small[0])
    assert pulled.returncode == 0 and pulled.stdout.startswith(f"pulled {images.small[0]} sha256:")
    again = _shipmate(images, tmp_path, "image", "pull", images.small[0])
    assert again.stdout.startswith("cached ")
    listed = _shipmate(images, tmp_path, "image", "ls")
    assert listed.stdout.splitlines()[0].endswith(images.small[0])  # the most recent first
    assert images.tools in listed.stdout
    pruned = _shipmate(images, tmp_path, "image", "prune", "--all")
    assert pruned.stdout.endswith("2 evicted, 0 kept\n")
    bad = _shipmate(images, tmp_path, "sandbox", "exec", "--image", images.tampered, "--", "true")
    assert bad.returncode == 125 and "did not match" in bad.stderr


async def _execute_on(
    images: Images,
    tmp_path: Path,
    files: dict[str, str],
    config: RepoConfig,
    default: str | None = None,
) -> Execution:
    repo = tmp_path / "origin"
    git("init", "-q", "-b", "main", str(repo))
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one", cwd=repo)
    sha = git("rev-parse", "HEAD", cwd=repo).strip()
    cache = CheckoutCache(tmp_path / "cache")
    checkout = cache.tree(str(repo), sha)
    try:
        return await execute(
            Inputs(
                checkout=checkout,
                base_sha=sha,
                brief=Brief(task="look around", plan_only=True),
                config=config,
                model=PlanOnly(),
                budget=Budget(5, 1.0, 120.0),
                transcript=Transcript(tmp_path / "transcript.jsonl"),
                store=None,
                run_id="r1",
                environments=Environments(images.store("execute"), default),
            )
        )
    finally:
        cache.release(checkout)


async def test_a_repositorys_environment_image_runs_its_setup(
    images: Images, tmp_path: Path
) -> None:
    setup = ['test "$(id -u)" = 1234 && only-in-image > ~/.cache/made && test "$PWD" = /src']
    config = RepoConfig.model_validate({"environment": {"image": images.tools}, "setup": setup})
    done = await _execute_on(images, tmp_path / "image", {"requirements.txt": "x\n"}, config)
    assert done.status == "completed", done.reason
    records = [json.loads(line) for line in (tmp_path / "image/transcript.jsonl").open()]
    (used,) = [record for record in records if record["kind"] == "environment"]
    assert used["digest"].startswith("sha256:")
    devcontainer = (
        '{\n  // the team image\n  "image": "' + images.tools + '",\n  "features": {},\n}\n'
    )
    config = RepoConfig.model_validate(
        {"environment": {"devcontainer": ".devcontainer/devcontainer.json"}, "setup": setup}
    )
    files = {"requirements.txt": "x\n", ".devcontainer/devcontainer.json": devcontainer}
    done = await _execute_on(images, tmp_path / "devcontainer", files, config)
    assert done.status == "completed", done.reason
    # The operator's SHIPMATE_DEFAULT_IMAGE, for a repository that names none.
    by_default = await _execute_on(
        images,
        tmp_path / "default",
        {"requirements.txt": "x\n"},
        RepoConfig(setup=setup),
        images.tools,
    )
    assert by_default.status == "completed", by_default.reason
    on_host = await _execute_on(
        images, tmp_path / "host", {"requirements.txt": "x\n"}, RepoConfig(setup=setup)
    )
    assert on_host.status == "failed" and on_host.reason.startswith("the setup command failed")


async def test_an_environment_that_cannot_be_pulled_fails_the_task_clearly(
    images: Images, tmp_path: Path
) -> None:
    config = RepoConfig.model_validate({"environment": {"image": images.tampered}})
    done = await _execute_on(images, tmp_path, {"a": "a"}, config)
    assert done.status == "failed"
    assert (
        done.reason.startswith("the environment could not be prepared:")
        and "did not match" in done.reason
    )


async def test_an_images_symlinks_at_mount_points_lead_nowhere_on_the_host(
    images: Images, tmp_path: Path
) -> None:
    victim = images.scratch / "victim"
    store = images.store("hostile")
    async with store.use(images.hostile) as root:
        spec = SandboxSpec(workspace=tmp_path, image=root, allow_hosts=("example.com",))
        async with open_sandbox(spec) as sandbox:
            result = await sandbox.exec(
                ["sh", "-c", "echo x > /tmp/t && echo y > ~/h && pwd && ls /etc/ssl/certs /proc/1"]
            )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.decode().startswith("/src\n/etc/ssl/certs:\nca-certificates.crt")
    assert os.listdir(victim) == []
