"""Clean checkouts from the cache, the setup step and its dependency cache, and `shipmate sandbox
exec` as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.runs.review import take_change
from bot.sandbox import open_sandbox
from bot.sandbox.base import SandboxSpec
from bot.sandbox.checkout import CheckoutCache, git
from bot.sandbox.setup import DependencyCache, lock_hash, run_setup

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
ROOT = Path(__file__).resolve().parent.parent


def _commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo).strip()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    repo = tmp_path / "origin"
    git("init", "-q", "-b", "main", str(repo))
    # Repo-controlled things that must never run on the host.
    (repo / ".git" / "hooks" / "post-checkout").write_text(
        "#!/bin/sh\ntouch /tmp/shipmate-hook-ran\n"
    )
    (repo / ".git" / "hooks" / "post-checkout").chmod(0o755)
    return repo


@pytest.mark.anyio
async def test_checkout_overlay_diff_and_incremental_move(tmp_path: Path, origin: Path) -> None:
    first = _commit(
        origin,
        {
            "calc.py": "def add(a, b):\n    return a - b\n",
            ".gitattributes": "*.py filter=evil\n",
            "requirements.txt": "six==1.16.0\n",
        },
        "one",
    )
    cache = CheckoutCache(tmp_path / "cache")
    checkout = cache.tree(str(origin), first)
    assert git("rev-parse", "HEAD", cwd=checkout.tree).strip() == first
    assert not Path("/tmp/shipmate-hook-ran").exists()
    spec = SandboxSpec(
        workspace=checkout.tree, overlay_lower=checkout.tree, ro_binds=checkout.ro_binds
    )
    async with open_sandbox(spec) as sandbox:
        await sandbox.exec(
            [
                "sh",
                "-c",
                "sed -i 's/a - b/a + b/' calc.py && echo new > notes.txt && rm requirements.txt",
            ]
        )
        change = take_change(sandbox.workspace_layers(), checkout, first)
    patch = change.patch
    assert "+    return a + b" in patch and "+new" in patch and "deleted file mode" in patch
    assert [entry.path for entry in change.changed] == ["calc.py", "notes.txt", "requirements.txt"]
    change.discard()
    # The cached tree is untouched by the task.
    assert (checkout.tree / "calc.py").read_text().endswith("a - b\n")
    assert (checkout.tree / "requirements.txt").exists() and not (
        checkout.tree / "notes.txt"
    ).exists()
    cache.release(checkout)

    second = _commit(origin, {"calc.py": "def add(a, b):\n    return b + a\n"}, "two")
    cache.keep_trees = 1
    moved = cache.tree(str(origin), second)  # fetched incrementally, tree moved, not re-cloned
    assert moved.tree.name == second and not checkout.tree.exists()
    assert (moved.tree / "calc.py").read_text().endswith("b + a\n")
    assert git("rev-parse", "HEAD", cwd=moved.tree).strip() == second


def test_a_tree_in_use_is_never_moved(tmp_path: Path, origin: Path) -> None:
    first = _commit(origin, {"a.txt": "1"}, "one")
    cache = CheckoutCache(tmp_path / "cache")
    cache.keep_trees = 1
    busy = cache.tree(str(origin), first)
    second = _commit(origin, {"a.txt": "2"}, "two")
    other = cache.tree(str(origin), second)
    assert busy.tree.exists() and other.tree != busy.tree
    assert (busy.tree / "a.txt").read_text() == "1"


@pytest.mark.anyio
async def test_setup_fills_the_cache_once_then_layers_it_unchanged(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "requirements.txt").write_text("six\n")
    deps = DependencyCache(tmp_path / "deps")
    first = deps.mount("octo-widgets", tree)
    assert first.writable
    ro, rw = first.binds()
    spec = SandboxSpec(workspace=tree, ro_binds=ro, rw_binds=rw)
    async with open_sandbox(spec) as sandbox:
        results = await run_setup(sandbox, ["echo cached > ~/.cache/pkg", "false", "echo never"])
    assert [r.exit_code for r in results] == [0, 1]
    first.complete()
    later = deps.mount("octo-widgets", tree)
    assert not later.writable and (later.path / "pkg").read_text() == "cached\n"
    layered, rw = later.binds()
    assert rw == {}
    spec = SandboxSpec(workspace=tree, layered_binds=layered)
    async with open_sandbox(spec) as sandbox:
        read = await sandbox.exec(["cat", "/home/sandbox/.cache/pkg"])
        write = await sandbox.exec(["sh", "-c", "echo x > ~/.cache/other; echo y >> ~/.cache/pkg"])
        seen = await sandbox.exec(["cat", "/home/sandbox/.cache/other", "/home/sandbox/.cache/pkg"])
    assert read.stdout == b"cached\n"
    # Writable for the tools inside (pip turns a read-only cache off), never for the cache.
    assert write.exit_code == 0 and seen.stdout == b"x\ncached\ny\n"
    assert sorted(p.name for p in later.path.iterdir()) == ["pkg"]
    assert (later.path / "pkg").read_text() == "cached\n"
    (tree / "requirements.txt").write_text("six\nattrs\n")
    assert deps.mount("octo-widgets", tree).writable  # new lock files, new cache
    assert lock_hash(tree) != first.path.name


def _cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "sandbox", "exec", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        timeout=60,
    )


def test_cli_exit_codes_output_and_workdir(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("from the host")
    ok = _cli(
        "--workdir",
        str(tmp_path),
        "--",
        "bash",
        "-c",
        "cat in.txt; echo err >&2; echo out > made.txt; exit 3",
        cwd=ROOT,
    )
    assert ok.returncode == 3 and ok.stdout == b"from the host" and b"err" in ok.stderr
    assert (tmp_path / "made.txt").read_text() == "out\n"
    timed = _cli("--timeout", "1", "--", "sleep", "30", cwd=ROOT)
    assert timed.returncode == 124 and b"timed out" in timed.stderr
    broken = _cli("--", "true", cwd=ROOT, env={"PATH": "/nonexistent"})
    assert broken.returncode == 125
    assert broken.stderr.decode().strip().splitlines() == [
        "shipmate sandbox: cannot start the sandbox: bubblewrap (bwrap) is not installed: "
        "apt-get install bubblewrap; Shipmate never runs commands unsandboxed"
    ]
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "bwrap").write_text(
        "#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n"
    )
    (fake_bin / "bwrap").chmod(0o755)
    no_userns = _cli("--", "true", cwd=ROOT, env={"PATH": f"{fake_bin}:{os.environ['PATH']}"})
    assert no_userns.returncode == 125
    assert no_userns.stderr.decode().strip().splitlines() == [
        "shipmate sandbox: cannot start the sandbox: the sandbox did not start: "
        "bwrap: setting up uid map: Permission denied"
    ]
    missing_secret = _cli("--secret", "NOPE_NOT_SET@example.com", "--", "true", cwd=ROOT)
    assert missing_secret.returncode == 125 and b"NOPE_NOT_SET" in missing_secret.stderr


def test_doctor_reports_the_isolation_features() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "doctor"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert (
        "bubblewrap" in result.stdout
        and "namespaces" in result.stdout
        and "cgroups" in result.stdout
        and "util-linux (unshare)" in result.stdout
    )


def test_cli_secret_never_reaches_pid_1_environment(tmp_path: Path) -> None:
    leak = _cli(
        "--secret",
        "FOO_SECRET@example.com",
        "--",
        "sh",
        "-c",
        "cat /proc/1/environ; echo; echo $FOO_SECRET",
        cwd=ROOT,
        env={"FOO_SECRET": "hunter2", "HOST_CANARY": "canary-91c2"},
    )
    assert leak.returncode == 0, leak.stderr.decode()
    assert b"PATH=" in leak.stdout  # PID 1's environment was read
    assert b"hunter2" not in leak.stdout and b"canary-91c2" not in leak.stdout
    assert b"SHIPMATE_PLACEHOLDER_FOO_SECRET_" in leak.stdout


def test_cli_uses_one_ca_per_install_under_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bundles = [
        _cli(
            "--allow-host",
            "example.com",
            "--",
            "cat",
            "/etc/ssl/certs/ca-certificates.crt",
            cwd=ROOT,
            env={"SHIPMATE_DATA_DIR": str(data)},
        )
        for _ in range(2)
    ]
    ca_pem = (data / "cache" / "ca" / "ca.pem").read_bytes()
    assert all(b.returncode == 0 and b.stdout.endswith(ca_pem) for b in bundles)
    assert oct((data / "cache" / "ca" / "ca.key").stat().st_mode & 0o777) == "0o600"


HOOKS = ("reference-transaction", "post-checkout", "post-merge", "post-rewrite", "pre-auto-gc")


def _install_hooks(folder: Path, marker: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in HOOKS:
        hook = folder / name
        hook.write_text(f"#!/bin/sh\necho {name} >> {marker}\n")
        hook.chmod(0o755)


def test_no_hook_or_filter_ever_runs_on_the_host(
    tmp_path: Path, origin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ran-on-host"
    first = _commit(origin, {"a.py": "one\n", ".gitattributes": "*.py filter=evil\n"}, "one")
    # A host whose git config runs things: a filter driver and a hooks folder, as a user's
    # ~/.gitconfig or /etc/gitconfig could define them.
    host_hooks = tmp_path / "host-hooks"
    _install_hooks(host_hooks, marker)
    evil_filter = tmp_path / "evil-filter"
    evil_filter.write_text(f"#!/bin/sh\necho filter-$1 >> {marker}\nexec cat\n")
    evil_filter.chmod(0o755)
    config = tmp_path / "host.gitconfig"
    config.write_text(
        f'[filter "evil"]\n\tsmudge = {evil_filter} smudge\n\tclean = {evil_filter} clean\n'
        f"[core]\n\thooksPath = {host_hooks}\n"
    )
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".gitconfig").write_text(config.read_text())
    for name, value in (
        ("GIT_CONFIG_GLOBAL", config),
        ("GIT_CONFIG_SYSTEM", config),
        ("HOME", tmp_path / "home"),
    ):
        monkeypatch.setenv(name, str(value))

    cache = CheckoutCache(tmp_path / "cache")
    cache.keep_trees = 1
    mirror = cache.mirror(str(origin), first)
    _install_hooks(mirror / "hooks", marker)  # in the mirror: fetches would fire them
    checkout = cache.tree(str(origin), first)
    _install_hooks(checkout.tree / ".git" / "hooks", marker)  # in the tree: moves would
    cache.release(checkout)
    second = _commit(origin, {"a.py": "two\n"}, "two")
    moved = cache.tree(str(origin), second)  # fetch in the mirror, two-way merge in the tree
    assert (moved.tree / "a.py").read_text() == "two\n"
    assert not marker.exists(), marker.read_text()

    # The same operations with git's usual config do run them: the test can fail.
    (moved.tree / "a.py").unlink()
    subprocess.run(["git", "checkout", "--", "a.py"], cwd=moved.tree, check=True)
    subprocess.run(["git", "update-ref", "refs/heads/x", second], cwd=moved.tree, check=True)
    ran = marker.read_text().split()
    assert "filter-smudge" in ran and "reference-transaction" in ran
