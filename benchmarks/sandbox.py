"""Sandbox spawn time, clean-checkout time and idle memory, each beside its baseline.

- start: a new task's sandbox up to its first command done, and closed again.
- spawn: `true` in a Shipmate sandbox as production runs a step — a fresh bwrap (new user, PID,
  IPC and UTS namespaces, a new /proc) started by the task's namespace holder, in the sandbox's
  cgroup (memory and process limits) with its rlimits, on the disk-capped tmpfs, with the egress
  proxy listening on its loopback — beside bare `bwrap --unshare-all --ro-bind / / true`,
  alternated run by run.
- checkout: a generated 5,000-file repository; the task's commit is one ahead of the cached
  tree (the usual case: the default branch moved). Shipmate moves the cached tree (git rewrites
  the changed files only) and mounts the task's overlay; `true` runs in it. Beside it:
  `git clone --no-local` and `git worktree add` of the same mirror.
- idle memory: the resident memory of a sandbox's processes (the namespace holder and everything
  below it) while its command sleeps.
- image (benchmarks/sandbox_image.py): the first pull and unpack of a test image from a registry
  on loopback, and the spawn of a sandbox on the cached image beside one on the host's folders.

Last line: one JSON object with the figures.
"""

# ruff: noqa: E402 (the imports wait for sys.path to be set right)
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder is first on sys.path, where queue.py would stand in for the
# standard library's `queue` (concurrent.futures imports it): take the folder off first.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.sandbox_image import image_figures
from bot.sandbox import open_sandbox
from bot.sandbox.base import Limits, SandboxSpec
from bot.sandbox.checkout import CheckoutCache

FILES = 5000
RUNS = 30


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(*argv: str, cwd: Path | None = None) -> str:
    return subprocess.run(argv, cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_repo(path: Path) -> tuple[str, str]:
    """A repository of FILES files over two commits; returns (old sha, new sha)."""
    run("git", "init", "-q", "-b", "main", str(path))
    for i in range(FILES):
        folder = path / f"pkg{i // 100:02d}"
        folder.mkdir(exist_ok=True)
        (folder / f"mod{i:04d}.py").write_text(f"# module {i}\nVALUE = {i}\n" + "x = 1\n" * 20)
    run("git", "add", "-A", cwd=path)
    ident = ["-c", "user.name=b", "-c", "user.email=b@b"]
    run("git", *ident, "commit", "-qm", "one", cwd=path)
    old = run("git", "rev-parse", "HEAD", cwd=path).strip()
    for i in range(0, FILES, 500):
        (path / f"pkg{i // 100:02d}" / f"mod{i:04d}.py").write_text(f"# changed {i}\n")
    run("git", "add", "-A", cwd=path)
    run("git", *ident, "commit", "-qm", "two", cwd=path)
    return old, run("git", "rev-parse", "HEAD", cwd=path).strip()


async def spawn_times(work: Path) -> tuple[list[float], list[float]]:
    """`true` in a sandbox set up as production runs a task step (cgroup limits, disk cap, an
    allowlisted host so the egress proxy listens on its loopback), alternated run by run
    with bare bwrap so both see the same machine load."""
    spec = SandboxSpec(
        workspace=work,
        limits=Limits(timeout_seconds=30, memory_mib=512, max_processes=256),
        allow_hosts=("pypi.org",),
        task_id="bench",
    )
    ours: list[float] = []
    bare: list[float] = []
    async with open_sandbox(spec, ca_dir=work / "ca") as sandbox:
        assert sandbox.bridge_port is not None
        for n in range(RUNS + 3):
            start = time.perf_counter()
            result = await sandbox.exec(["true"])
            if n >= 3:
                ours.append((time.perf_counter() - start) * 1000)
            assert result.exit_code == 0
            start = time.perf_counter()
            subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"], check=True)
            if n >= 3:
                bare.append((time.perf_counter() - start) * 1000)
    return ours, bare


async def start_times(work: Path) -> list[float]:
    """A new task's sandbox from nothing to its first command done: the cgroup, the namespace
    holder building the root tree on the task's disk, the proxy and its socket, `true`, and
    closing it all again."""
    times: list[float] = []
    for n in range(RUNS // 3):
        folder = work / f"start{n}"
        folder.mkdir()
        spec = SandboxSpec(
            workspace=folder,
            limits=Limits(timeout_seconds=30, memory_mib=512, max_processes=256),
            allow_hosts=("pypi.org",),
            task_id="start",
        )
        start = time.perf_counter()
        async with open_sandbox(spec, ca_dir=work / "ca") as sandbox:
            result = await sandbox.exec(["true"])
        times.append((time.perf_counter() - start) * 1000)
        assert result.exit_code == 0
    return times


async def checkout_times(work: Path, origin: Path, old: str, new: str) -> list[float]:
    times: list[float] = []
    for n in range(RUNS // 3):
        cache = CheckoutCache(work / f"cache{n}")
        cache.keep_trees = 1
        warm = cache.tree(str(origin), old)  # the cache as a running server has it
        cache.release(warm)
        cache.mirror(str(origin), new)  # fetched when the push webhook arrived
        start = time.perf_counter()
        checkout = cache.tree(str(origin), new)
        spec = SandboxSpec(
            workspace=checkout.tree, overlay_lower=checkout.tree, ro_binds=checkout.ro_binds
        )
        async with open_sandbox(spec) as sandbox:
            result = await sandbox.exec(["test", "-f", "pkg00/mod0000.py"])
        times.append((time.perf_counter() - start) * 1000)
        assert result.exit_code == 0
        cache.release(checkout)
        shutil.rmtree(work / f"cache{n}")
    return times


def baseline_times(work: Path, origin: Path, new: str) -> tuple[list[float], list[float]]:
    mirror = work / "mirror.git"
    run("git", "clone", "-q", "--mirror", str(origin), str(mirror))
    clones: list[float] = []
    worktrees: list[float] = []
    for n in range(5):
        target = work / f"clone{n}"
        start = time.perf_counter()
        run("git", "clone", "-q", "--no-local", str(mirror), str(target))
        run("git", "checkout", "-q", new, cwd=target)
        clones.append((time.perf_counter() - start) * 1000)
        shutil.rmtree(target)
        target = work / f"wt{n}"
        start = time.perf_counter()
        run("git", "worktree", "add", "-q", "--detach", str(target), new, cwd=mirror)
        worktrees.append((time.perf_counter() - start) * 1000)
        run("git", "worktree", "remove", "--force", str(target), cwd=mirror)
    return clones, worktrees


def _descendants(root: int) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(proc.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


async def idle_rss_mib(work: Path) -> tuple[float, float]:
    """Resident memory of one sandbox at rest: the namespace holder (with the egress proxy's
    socket on its loopback, as production with an allowlisted host) and every process below it:
    the request's shell, bwrap and its PID 1, and the command (`sleep`). RSS counts shared
    library pages once per process; PSS shares them out, so it is what the sandbox adds."""
    spec = SandboxSpec(
        workspace=work, limits=Limits(timeout_seconds=30), allow_hosts=("pypi.org",), task_id="idle"
    )
    async with open_sandbox(spec, ca_dir=work / "ca") as sandbox:
        task = asyncio.create_task(sandbox.exec(["sleep", "3"]))
        await asyncio.sleep(1.0)
        assert sandbox._holder is not None
        total_kib = pss_kib = 0
        names = []
        for pid in _descendants(sandbox._holder.pid):
            proc = Path("/proc") / str(pid)
            with contextlib.suppress(OSError):
                names.append((proc / "comm").read_text().strip())
                for line in (proc / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total_kib += int(line.split()[1])
                for line in (proc / "smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        pss_kib += int(line.split()[1])
        assert "sleep" in names and "bwrap" in names, names
        print(f"idle sandbox processes: {', '.join(names)}")
        await task
    return total_kib / 1024, pss_kib / 1024


async def main() -> int:
    with tempfile.TemporaryDirectory(prefix="shipmate-sbench-") as tmp:
        work = Path(tmp)
        (work / "spawn").mkdir()
        ours, bare = await spawn_times(work / "spawn")
        starts = await start_times(work / "spawn")
        ratio = pct(ours, 0.5) / pct(bare, 0.5)
        print(
            f"spawn `true` (limits, disk cap, egress proxy in place): shipmate p50 "
            f"{pct(ours, 0.5):.1f} ms p95 {pct(ours, 0.95):.1f} ms; bare bwrap p50 "
            f"{pct(bare, 0.5):.1f} ms p95 {pct(bare, 0.95):.1f} ms; ratio {ratio:.2f}x "
            f"(targets: <= 1.5x {'met' if ratio <= 1.5 else 'NOT met'}, <= 15 ms "
            f"{'met' if pct(ours, 0.5) <= 15 else 'NOT met'})"
        )
        print(
            f"a new task's sandbox to its first command done (holder, root tree, proxy, close): "
            f"p50 {pct(starts, 0.5):.1f} ms, p95 {pct(starts, 0.95):.1f} ms"
        )
        origin = work / "origin"
        old, new = make_repo(origin)
        checkouts = await checkout_times(work, origin, old, new)
        clones, worktrees = baseline_times(work, origin, new)
        print(
            f"checkout of {FILES} files at a new commit: shipmate p50 {pct(checkouts, 0.5):.1f} ms "
            f"(p95 {pct(checkouts, 0.95):.1f}); git clone --no-local p50 {pct(clones, 0.5):.0f} ms; "
            f"git worktree add p50 {pct(worktrees, 0.5):.0f} ms; "
            f"{pct(clones, 0.5) / pct(checkouts, 0.5):.0f}x faster than the clone"
        )
        (work / "idle").mkdir()
        idle, idle_pss = await idle_rss_mib(work / "idle")
        print(
            f"idle sandbox memory: RSS {idle:.1f} MiB, PSS {idle_pss:.1f} MiB "
            f"(target <= 10 MiB: RSS {'met' if idle <= 10 else 'NOT met'})"
        )
        (work / "image").mkdir()
        images = await image_figures(work / "image")
    figures = {
        "spawn_p50_ms": round(pct(ours, 0.5), 2),
        "spawn_p95_ms": round(pct(ours, 0.95), 2),
        "bwrap_p50_ms": round(pct(bare, 0.5), 2),
        "bwrap_p95_ms": round(pct(bare, 0.95), 2),
        "checkout_p50_ms": round(pct(checkouts, 0.5), 2),
        "clone_p50_ms": round(pct(clones, 0.5), 2),
        "worktree_p50_ms": round(pct(worktrees, 0.5), 2),
        "idle_rss_mib": round(idle, 2),
        "idle_pss_mib": round(idle_pss, 2),
        "spawn_mean_ms": round(statistics.mean(ours), 2),
        "first_command_p50_ms": round(pct(starts, 0.5), 2),
        **images,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
