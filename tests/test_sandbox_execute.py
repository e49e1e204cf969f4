"""The sandbox as execute() uses it in production: the secrets the operator declared and the
repository requests, and the `setup:` step (with its dependency cache), over a real checkout, a
real sandbox and a real egress proxy."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.agent.budget import Budget
from bot.agent.ledger import Usage
from bot.agent.model import Reply
from bot.agent.prompts import Brief
from bot.agent.transcript import Transcript
from bot.config import RepoConfig, Settings
from bot.runs.execute import Inputs, execute
from bot.runs.execution import Execution
from bot.runs.start import run_secrets
from bot.sandbox.checkout import CheckoutCache, git
from bot.sandbox.setup import FILLED

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]
REAL = "npm-real-5b1c"


@dataclass
class PlanOnly:
    """The model's part is not under test here: it answers every call with a plan."""

    name: str = "claude-sonnet-4-6"
    calls: list[Any] = field(default_factory=list)

    async def reply(self, **request: Any) -> Reply:
        self.calls.append(request)
        return Reply([{"type": "text", "text": "1. Nothing to do."}], "end_turn", Usage(), 1.0)


class Recorder:
    """An upstream that keeps each request head and answers 200."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Recorder, int]]:
    recorder = Recorder()
    server = await asyncio.start_server(recorder.handle, "127.0.0.2", 0)
    yield recorder, server.sockets[0].getsockname()[1]
    server.close()


@pytest.fixture
def cache(tmp_path: Path) -> CheckoutCache:
    return CheckoutCache(tmp_path / "data" / "cache")


def _origin(tmp_path: Path, files: dict[str, str]) -> tuple[str, str]:
    repo = tmp_path / "origin"
    git("init", "-q", "-b", "main", str(repo))
    for name, text in files.items():
        (repo / name).write_text(text)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one", cwd=repo)
    return str(repo), git("rev-parse", "HEAD", cwd=repo).strip()


async def _execute(
    cache: CheckoutCache, url: str, sha: str, config: RepoConfig, **kwargs: Any
) -> Execution:
    checkout = cache.tree(url, sha)
    try:
        return await execute(
            Inputs(
                checkout=checkout,
                base_sha=sha,
                brief=Brief(task="look around", plan_only=True),
                config=config,
                model=PlanOnly(),
                budget=Budget(5, 1.0, 120.0),
                transcript=Transcript(None),
                store=None,
                run_id="r1",
                ca_dir=cache.root / "ca",
                **kwargs,
            )
        )
    finally:
        cache.release(checkout)


async def test_declared_secrets_reach_their_host_and_never_for_forks(
    tmp_path: Path,
    cache: CheckoutCache,
    upstream: tuple[Recorder, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder, port = upstream
    monkeypatch.setenv("CI_NPM_TOKEN", REAL)
    declarations = tmp_path / "secrets.yml"
    declarations.write_text(
        "secrets:\n  NPM_TOKEN:\n    env: CI_NPM_TOKEN\n"
        f"    hosts: ['127.0.0.2:{port}']\n    repositories: ['acme/*']\n"
    )
    settings = Settings.model_construct(secrets_file=declarations, data_dir=tmp_path / "data")
    url, sha = _origin(tmp_path, {"a.txt": "a"})
    config = RepoConfig.model_validate(
        {
            "setup": [
                f'curl -sf -H "X-Npm: $NPM_TOKEN" http://127.0.0.2:{port}/npm',
                'case "$NPM_TOKEN" in SHIPMATE_PLACEHOLDER_*|"") ;; *) exit 9;; esac',
            ],
            "network": {"allow": [f"127.0.0.2:{port}"]},
            "secrets": ["NPM_TOKEN"],
        }
    )
    granted = run_secrets(settings, config, "acme/web", 7, fork=False)
    assert granted.refused == () and granted.values == [REAL]
    own = await _execute(
        cache, url, sha, config, secrets=granted.secrets, allow_networks=("127.0.0.0/8",)
    )
    assert own.status == "completed", own.reason
    assert f"X-Npm: {REAL}".encode() in recorder.heads[0]

    forked = run_secrets(settings, config, "acme/web", 7, fork=True)
    assert forked.secrets == {} and forked.refused == ()
    fork = await _execute(
        cache, url, sha, config, secrets=forked.secrets, allow_networks=("127.0.0.0/8",)
    )
    assert fork.status == "completed", fork.reason
    assert REAL.encode() not in recorder.heads[1] and b"X-Npm" not in recorder.heads[1]


async def test_setup_fills_the_repository_dependency_cache_once_then_reads_it(
    tmp_path: Path, cache: CheckoutCache
) -> None:
    url, sha = _origin(tmp_path, {"requirements.txt": "six\n"})
    fill = "echo installed >> ~/.cache/dep"
    failed = await _execute(cache, url, sha, RepoConfig(setup=[fill, "exit 3", "echo never"]))
    assert failed.status == "failed" and failed.reason == "the setup command failed: exit 3"
    (folder,) = (cache.root / "deps").iterdir()
    assert not list(folder.glob(f"*{FILLED}"))  # a failed fill is never reused

    reuse = "[ -f ~/.cache/dep ] || { echo installed >> ~/.cache/dep; }"
    first = await _execute(cache, url, sha, RepoConfig(setup=[reuse]))
    assert first.status == "completed", first.reason
    (filled,) = [p for p in folder.iterdir() if p.is_dir()]
    assert (filled / "dep").read_text() == "installed\n" and list(folder.glob(f"*{FILLED}"))

    layered = "grep -qx installed ~/.cache/dep && test -w ~/.cache && echo more >> ~/.cache/dep"
    second = await _execute(cache, url, sha, RepoConfig(setup=[layered]))
    assert second.status == "completed", second.reason
    assert (filled / "dep").read_text() == "installed\n"  # the task's write was its own
