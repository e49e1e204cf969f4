"""Sandboxes on an OCI image, for benchmarks/sandbox.py: the first pull and unpack of a test
image from a registry on loopback, a cached pull (the tag resolved again), and the spawn of a
sandbox on the cached image beside one on the host's folders, alternated run by run.

The test image: a static busybox and 3,000 small files over three layers (a whiteout among
them), about 14 MiB, pushed to Debian's docker-registry with skopeo (standins/registry.py).
"""

# ruff: noqa: E402 (the imports wait for sys.path to be set right)
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder is first on sys.path, where queue.py would stand in for the
# standard library's `queue` (concurrent.futures imports it): take the folder off first.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import os
import statistics
import time

from bot.sandbox import open_sandbox
from bot.sandbox.base import ImageRoot, Limits, SandboxSpec
from bot.sandbox.image import RegistryPolicy
from bot.sandbox.image_cache import ImageStore
from standins.registry import Entry, Layout, Registry, busybox_layer

RUNS = 30


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _push_test_image(registry: Registry, work: Path) -> str:
    files = [
        Entry(f"usr/share/bench/{i // 100:02d}/f{i:04d}", data=os.urandom(4096))
        for i in range(3000)
    ]
    layers = [
        busybox_layer(),
        [*files[:1500], Entry("usr/share/bench/gone", data=b"x")],
        [*files[1500:], Entry("usr/share/bench/.wh.gone")],
    ]
    layout = Layout(work / "layout")
    layout.tag(layout.image(layers, {"Env": ["PATH=/bin"]}))
    return registry.push(layout.path, "bench/busybox")


def _spec(work: Path, image: ImageRoot | None) -> SandboxSpec:
    return SandboxSpec(
        workspace=work,
        limits=Limits(timeout_seconds=30, memory_mib=512, max_processes=256),
        allow_hosts=("pypi.org",),
        task_id="image-bench",
        image=image,
    )


async def _first_command_ms(work: Path, image: ImageRoot | None) -> float:
    start = time.perf_counter()
    async with open_sandbox(_spec(work, image), ca_dir=work / "ca") as sandbox:
        result = await sandbox.exec(["true"])
    assert result.exit_code == 0, result.stderr
    return (time.perf_counter() - start) * 1000


async def _spawns(work: Path, image: ImageRoot) -> tuple[list[float], list[float]]:
    """`true` in a running sandbox on the image and in one on the host's folders, alternated."""
    on_image: list[float] = []
    on_host: list[float] = []
    async with (
        open_sandbox(_spec(work, image), ca_dir=work / "ca") as imaged,
        open_sandbox(_spec(work, None), ca_dir=work / "ca") as hosted,
    ):
        for n in range(RUNS + 3):
            for sandbox, times in ((imaged, on_image), (hosted, on_host)):
                start = time.perf_counter()
                result = await sandbox.exec(["true"])
                assert result.exit_code == 0, result.stderr
                if n >= 3:
                    times.append((time.perf_counter() - start) * 1000)
    return on_image, on_host


async def image_figures(work: Path) -> dict[str, float]:
    """Prints the figures and returns them for the JSON line."""
    registry = Registry(work)
    try:
        reference = _push_test_image(registry, work)
        policy = RegistryPolicy(insecure=[registry.host])
        store = ImageStore(work / "images", policy, limit_bytes=1 << 30)
        start = time.perf_counter()
        pulled = await store.pull(reference)
        first_pull = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        again = await store.pull(reference)
        cached_pull = (time.perf_counter() - start) * 1000
        assert pulled.pulled and not again.pulled
        size_mib = pulled.image.size_bytes / (1 << 20)
        print(
            f"image: first pull + unpack of a {size_mib:.1f} MiB, 3,000-file test image "
            f"(loopback registry, skopeo, digest checks, whiteouts): {first_pull:.0f} ms; "
            f"again from the cache (the tag resolved once more): {cached_pull:.0f} ms"
        )
        async with store.use(reference) as image:
            (work / "ws").mkdir()
            on_image, on_host = await _spawns(work / "ws", image)
            starts_image: list[float] = []
            starts_host: list[float] = []
            for _ in range(RUNS // 3):
                starts_image.append(await _first_command_ms(work / "ws", image))
                starts_host.append(await _first_command_ms(work / "ws", None))
    finally:
        registry.stop()
    spawn_ratio = pct(on_image, 0.5) / pct(on_host, 0.5)
    start_ratio = pct(starts_image, 0.5) / pct(starts_host, 0.5)
    print(
        f"image: spawn `true` on the cached image p50 {pct(on_image, 0.5):.1f} ms "
        f"(p95 {pct(on_image, 0.95):.1f}) vs host folders p50 {pct(on_host, 0.5):.1f} ms "
        f"(p95 {pct(on_host, 0.95):.1f}): {spawn_ratio:.2f}x; a new sandbox to its first command "
        f"on the image p50 {pct(starts_image, 0.5):.1f} ms vs host folders "
        f"{pct(starts_host, 0.5):.1f} ms: {start_ratio:.2f}x (target <= 1.2x: "
        f"{'met' if max(spawn_ratio, start_ratio) <= 1.2 else 'NOT met'})"
    )
    return {
        "image_first_pull_ms": round(first_pull, 1),
        "image_cached_pull_ms": round(cached_pull, 1),
        "image_size_mib": round(size_mib, 2),
        "image_spawn_p50_ms": round(pct(on_image, 0.5), 2),
        "image_host_spawn_p50_ms": round(pct(on_host, 0.5), 2),
        "image_start_p50_ms": round(pct(starts_image, 0.5), 2),
        "image_host_start_p50_ms": round(pct(starts_host, 0.5), 2),
        "image_spawn_mean_ms": round(statistics.mean(on_image), 2),
    }
