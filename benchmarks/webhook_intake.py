"""Webhook intake throughput and latency: `shipmate serve` beside a no-op Probot 14 app.

Shipmate runs as a user runs it: `shipmate serve`, with its in-process worker handling every
queued delivery while the load goes on. Both servers receive the same real, signed
`issue_comment` delivery from wrk over loopback, each request with its own X-GitHub-Delivery and
its own body (a nonce in the comment's node_id, each body signed beforehand: Shipmate answers a
body it already accepted as a duplicate, a replay).
Shipmate stores every delivery durably (SQLite WAL, group commit) before its 202; Probot stores
nothing. First p99 latency at a fixed 200 requests/s (open-loop pacing, the worker keeping up),
then throughput under wrk, and a SIGKILL of the whole server (every process of it) in the
middle of a load run: after a restart, every delivery id that got a 2xx must be in the database.
Requests/s counts 2xx answers only, and each measured run starts with the page cache written
back, so that neither server pays for the other's disk writes.

Targets: at least 1.2x Probot's requests/s, p99 at most 25 ms at 200 requests/s, 0 lost.

Needs `wrk` (apt-get install wrk, or SHIPMATE_SETUP_WRK=1 bash scripts/setup) and node + npm
(probot@14 is installed into a temporary folder); without them it stops with exit 2. Last line:
one JSON object with the figures.

    .venv/bin/python benchmarks/webhook_intake.py [--duration 10] [--connections 16]
"""

# ruff: noqa: E402 (the imports wait for sys.path to be set right)
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder is first on sys.path, where queue.py would stand in for the
# standard library's `queue` (concurrent.futures imports it): take the folder off first.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse
import asyncio
import itertools
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.intake.webhooks import sign

FIXTURE = (
    ROOT.parent
    / "shared"
    / "fixtures"
    / "github-webhooks"
    / "issue_comment"
    / "created.payload.json"
)
LUA = Path(__file__).resolve().parent / "intake.lua"
SECRET = "bench-secret"
PROBOT_APP = """export default (app) => {
  app.on("issue_comment.created", async () => {});
};
"""


NONCE = "@@NONCE@@"
# Deliveries a wrk run may send at most (its signatures are made beforehand).
MAX_RATE = 15_000
THREADS = 2


class Bodies:
    """The fixture as HEAD + 10-digit nonce + TAIL, and a signature for each nonce; each wrk
    run takes its own range of nonces, so no body is sent twice to one database."""

    def __init__(self, work: Path, count: int) -> None:
        payload = json.loads(FIXTURE.read_text())
        payload["comment"]["node_id"] = NONCE
        head, tail = json.dumps(payload, separators=(",", ":")).encode().split(NONCE.encode())
        self.head, self.tail = work / "head.json", work / "tail.json"
        self.head.write_bytes(head)
        self.tail.write_bytes(tail)
        self.signatures = work / "signatures"
        with self.signatures.open("w") as out:
            for index in range(count):
                out.write(sign(head + b"%010d" % index + tail, SECRET) + "\n")
        self.count, self.used = count, 0
        self._head, self._tail = head, tail
        self._paced = itertools.count()

    def take(self, seconds: float) -> tuple[int, int]:
        """(first nonce, nonces per thread) for a run of `seconds`."""
        per_thread = int(MAX_RATE * seconds / THREADS) + 1
        first, self.used = self.used, self.used + per_thread * THREADS
        if self.used > self.count:
            raise BenchmarkError("not enough signed bodies for the runs asked for")
        return first, per_thread

    def paced(self) -> tuple[bytes, str]:
        """A body (and its signature) of its own for the paced load, out of wrk's ranges."""
        body = self._head + b"%010d" % (9_000_000_000 + next(self._paced)) + self._tail
        return body, sign(body, SECRET)

    def wrk_args(self, first: int, per_thread: int) -> list[str]:
        return [str(self.head), str(self.tail), str(self.signatures), str(first), str(per_thread)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


class BenchmarkError(Exception):
    """The benchmark cannot run here; the message says what is missing."""


def start_shipmate(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SHIPMATE_DATA_DIR": str(data_dir),
        "SHIPMATE_WEBHOOK_SECRET": SECRET,
        "SHIPMATE_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "shipmate"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Its own process group, so that a crash can take every process of it at once.
        start_new_session=True,
    )
    wait_ready(f"http://127.0.0.1:{port}/healthz", process)
    return process


def start_probot(folder: Path, port: int) -> subprocess.Popen[bytes]:
    if not (folder / "node_modules" / "probot").exists():
        installed = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", "probot@14"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if installed.returncode != 0:
            reason = (installed.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchmarkError(f"npm install probot@14 failed: {reason}")
    (folder / "app.js").write_text(PROBOT_APP)
    (folder / "package.json").write_text(json.dumps({"type": "module", "private": True}))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    env = {
        **os.environ,
        "APP_ID": "1",
        "PRIVATE_KEY": key.decode(),
        "WEBHOOK_SECRET": SECRET,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "fatal",
        "NODE_ENV": "production",
    }
    process = subprocess.Popen(
        [str(folder / "node_modules" / ".bin" / "probot"), "run", "./app.js"],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(f"http://127.0.0.1:{port}/", process)
    return process


def wrk(port: int, bodies: Bodies, duration: float, connections: int) -> dict[str, float]:
    first, per_thread = bodies.take(duration)
    result = subprocess.run(
        [
            "wrk",
            f"-t{THREADS}",
            f"-c{connections}",
            f"-d{int(duration)}s",
            "--latency",
            "-s",
            str(LUA),
            f"http://127.0.0.1:{port}/api/github/webhooks",
            "--",
            *bodies.wrk_args(first, per_thread),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout

    def latency_ms(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if match is None:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    accepted = int(re.search(r"ACCEPTED (\d+)", out).group(1))  # type: ignore[union-attr]
    rejected = int(re.search(r"REJECTED (\d+)", out).group(1))  # type: ignore[union-attr]
    return {
        # Answers that were not 2xx (a refused signature, an error) count for nothing.
        "rps": rps * accepted / max(1, accepted + rejected),
        "p50_ms": latency_ms("50"),
        "p99_ms": latency_ms("99"),
        "accepted": accepted,
        "rejected": rejected,
    }


async def paced(port: int, bodies: Bodies, rate: float, seconds: float) -> list[float]:
    """Open-loop load: one request every 1/rate s, whatever the answers; latencies in ms."""
    latencies: list[float] = []
    url = f"http://127.0.0.1:{port}/api/github/webhooks"
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def one(n: int) -> None:
            body, signature = bodies.paced()
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": "issue_comment",
                "X-GitHub-Delivery": f"paced-{port}-{n}-{time.time_ns()}",
                "X-Hub-Signature-256": signature,
            }
            start = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            latencies.append((time.perf_counter() - start) * 1000)
            assert response.status_code in (200, 202), response.status_code

        # Warm the connections, then pace.
        await asyncio.gather(*(one(-i - 1) for i in range(8)))
        latencies.clear()
        tasks = []
        begin = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = begin + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return latencies


def settle() -> None:
    """Write back the page cache before a measured run. Shipmate's runs leave hundreds of MB
    of database pages dirty; the kernel's writeback of them would otherwise take CPU from
    whichever server runs next (Probot), in the middle of its measurement."""
    os.sync()
    time.sleep(1)


def line(name: str, figures: dict[str, float]) -> str:
    return (
        f"{name:10} {figures['rps']:9.0f} req/s  p50 {figures['p50_ms']:.2f} ms"
        f"  p99 {figures['p99_ms']:.2f} ms"
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def count_rows(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "shipmate.db") as conn:
        return int(conn.execute("SELECT count(*) FROM deliveries").fetchone()[0])


def stored_ids(data_dir: Path) -> set[str]:
    with sqlite3.connect(data_dir / "shipmate.db") as conn:
        return {row[0] for row in conn.execute("SELECT delivery_id FROM deliveries")}


def answered_ids(prefix: Path) -> set[str]:
    """The delivery ids wrk's threads saw a 2xx for (intake.lua's third argument)."""
    ids: set[str] = set()
    for path in prefix.parent.glob(prefix.name + "-*"):
        ids.update(line for line in path.read_text().splitlines() if line)
    return ids


def kill_during_load(work: Path, bodies: Bodies, connections: int) -> dict[str, int]:
    data_dir = work / "kill"
    ids_prefix = work / "accepted-ids"
    port = free_port()
    server = start_shipmate(data_dir, port)
    first, per_thread = bodies.take(4)
    load = subprocess.Popen(
        [
            "wrk",
            f"-t{THREADS}",
            f"-c{connections}",
            "-d4s",
            "-s",
            str(LUA),
            f"http://127.0.0.1:{port}/api/github/webhooks",
            "--",
            *bodies.wrk_args(first, per_thread),
            str(ids_prefix),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(2.0)
    # The whole server at once, as a crash or the OOM killer would take it: with several
    # processes (`serve --workers N`), a SIGKILL to the supervisor alone is a graceful stop
    # of the others.
    os.killpg(server.pid, signal.SIGKILL)
    server.wait()
    out = load.communicate(timeout=60)[0]
    accepted = int(re.search(r"ACCEPTED (\d+)", out).group(1))  # type: ignore[union-attr]
    restarted = start_shipmate(data_dir, port)  # recovers the WAL like any restart
    restarted.send_signal(signal.SIGTERM)
    restarted.wait(30)
    answered = answered_ids(ids_prefix)
    if len(answered) != accepted:
        raise BenchmarkError(
            f"wrk counted {accepted} 2xx replies but recorded {len(answered)} delivery ids"
        )
    stored = stored_ids(data_dir)
    return {
        "accepted_before_kill": accepted,
        "stored_after_restart": len(stored),
        "lost_deliveries": len(answered - stored),
    }


def require_tools() -> None:
    missing = [tool for tool in ("wrk", "node", "npm") if shutil.which(tool) is None]
    if missing:
        raise BenchmarkError(
            f"{', '.join(missing)} not installed; install them first "
            "(apt-get install wrk nodejs npm, or SHIPMATE_SETUP_WRK=1 bash scripts/setup for wrk)"
        )


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200)
    args = parser.parse_args()
    try:
        require_tools()
        figures = measure(args)
    except BenchmarkError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(figures))
    return 0


def measure(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="shipmate-bench-") as tmp:
        work = Path(tmp)
        # Shipmate's runs (2 s warm-up, the measured one) and the SIGKILL run (4 s); Probot's
        # runs reuse them (it stores nothing).
        seconds = 2 + args.duration + 4
        bodies = Bodies(work, int(MAX_RATE * seconds) + THREADS * 3)

        port = free_port()
        server = start_shipmate(work / "main", port)
        try:
            # Paced first: at 200 req/s the worker keeps up, so this is the steady state, not
            # the drain of the backlog that the saturating wrk run leaves behind.
            asyncio.run(paced(port, bodies, args.rate, 1))  # warm-up
            ours_paced = asyncio.run(paced(port, bodies, args.rate, args.duration))
            settle()
            wrk(port, bodies, 2, args.connections)  # warm-up
            ours = wrk(port, bodies, args.duration, args.connections)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
        stored = count_rows(work / "main")
        print(
            f"{line('shipmate', ours)}  ({ours['accepted']:.0f} accepted,"
            f" {ours['rejected']:.0f} rejected, {stored} rows stored)"
        )

        probot_dir = work / "probot"
        probot_dir.mkdir()
        port = free_port()
        probot = start_probot(probot_dir, port)
        try:
            settle()
            bodies.used = 0  # Probot stores nothing: the same bodies again
            wrk(port, bodies, 2, args.connections)
            theirs = wrk(port, bodies, args.duration, args.connections)
        finally:
            probot.terminate()
            probot.wait(30)
        print(
            f"{line('probot 14', theirs)}  ({theirs['accepted']:.0f} accepted,"
            f" {theirs['rejected']:.0f} rejected, stores nothing)"
        )

        p99_paced = percentile(ours_paced, 0.99)
        print(
            f"shipmate at a fixed {args.rate:.0f} req/s: p50 {percentile(ours_paced, 0.5):.2f} ms, "
            f"p99 {p99_paced:.2f} ms over {len(ours_paced)} requests"
        )
        killed = kill_during_load(work, bodies, args.connections)
        print(
            f"SIGKILL during load: {killed['accepted_before_kill']} deliveries got a 2xx, "
            f"{killed['stored_after_restart']} rows after restart, "
            f"{killed['lost_deliveries']} of the 2xx ids missing"
        )

    ratio = ours["rps"] / theirs["rps"]
    targets = {
        "ratio": ratio >= 1.2,
        "p99": p99_paced <= 25.0,
        "lost": killed["lost_deliveries"] == 0,
    }
    print(f"target >= 1.2x Probot's req/s: {ratio:.2f}x, {verdict(targets['ratio'])}")
    print(
        f"target p99 <= 25 ms at {args.rate:.0f} req/s: {p99_paced:.2f} ms, "
        f"{verdict(targets['p99'])}"
    )
    print(f"target 0 lost: {killed['lost_deliveries']} lost, {verdict(targets['lost'])}")
    return {
        "shipmate_rps": round(ours["rps"], 1),
        "shipmate_p50_ms": round(ours["p50_ms"], 2),
        "shipmate_p99_ms": round(ours["p99_ms"], 2),
        "probot_rps": round(theirs["rps"], 1),
        "probot_p50_ms": round(theirs["p50_ms"], 2),
        "probot_p99_ms": round(theirs["p99_ms"], 2),
        "shipmate_rejected": int(ours["rejected"]),
        "probot_rejected": int(theirs["rejected"]),
        "ratio": round(ratio, 3),
        "p99_ms_at_200rps": round(p99_paced, 2),
        "lost": killed["lost_deliveries"],
        "targets_met": all(targets.values()),
        "connections": args.connections,
    }


if __name__ == "__main__":
    raise SystemExit(main())
