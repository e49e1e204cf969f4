"""The layout by layer holds: imports run one way (no cycle, counting imports inside functions
and under TYPE_CHECKING), the agent reaches neither GitHub, git, the store nor the queue, the
stand-ins stay out of the product and out of the wheel, and only bot/github/ opens HTTP clients
to GitHub. Read from the source with `ast`, so nothing here imports the modules it checks."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("bot", "handlers")


def module_files(packages: Iterable[str] = SHIPPED) -> dict[str, Path]:
    """Dotted module name -> file, for every module of `packages` (a package is its
    `__init__.py`)."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_names(module: str, path: Path) -> set[str]:
    """Every module name `path` imports, anywhere in the file, relative imports resolved; for
    `from a import b`, both `a` and `a.b` (b may be a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(files: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of `files` it imports. Importing `a.b.c` runs `a` and `a.b` too,
    so those count, except the importer's own packages (already being imported)."""
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        own = {".".join(module.split(".")[:n]) for n in range(1, module.count(".") + 1)}
        edges: set[str] = set()
        for name in imported_names(module, path):
            parts = name.split(".")
            for n in range(1, len(parts) + 1):
                target = ".".join(parts[:n])
                if target in files and target not in own and target != module:
                    edges.add(target)
        graph[module] = edges
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(module_files())


def test_the_cycle_finder_finds_cycles_and_only_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_the_graph_sees_imports_in_functions_and_under_type_checking(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import X\n"
    )
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from . import a\n")
    files = {"pkg": tmp_path / "pkg/__init__.py"}
    files |= {f"pkg.{n}": tmp_path / f"pkg/{n}.py" for n in "ab"}
    assert cycles(import_graph(files)) == [["pkg.a", "pkg.b"]]


def test_no_import_cycle_among_shipped_modules(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def _reaches(graph: Mapping[str, set[str]], module: str, rooms: Iterable[str]) -> list[str]:
    prefixes = tuple(rooms)
    return sorted(
        t for t in graph[module] if t in prefixes or t.startswith(tuple(f"{p}." for p in prefixes))
    )


# What the agent may use: itself, the pure security functions, and the sandbox it runs in.
AGENT_MAY_IMPORT = ("bot.agent", "bot.security", "bot.sandbox")


def test_the_agent_imports_nothing_of_github_the_store_the_queue_or_the_runs(
    graph: dict[str, set[str]],
) -> None:
    agent = [m for m in graph if m == "bot.agent" or m.startswith("bot.agent.")]
    assert agent
    for module in agent:
        ours = {t for t in graph[module] if t.startswith(("bot", "handlers"))}
        outside = sorted(t for t in ours if not t.startswith(AGENT_MAY_IMPORT))
        assert outside == [], f"{module} imports {outside}"
        names = imported_names(module, module_files()[module])
        clients = sorted(
            n for n in names if n.split(".")[0] in ("githubkit", "httpx", "subprocess")
        )
        assert clients == [], f"{module} imports {clients}"


def _strings(path: Path) -> Iterable[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def test_the_agent_never_runs_git() -> None:
    """No `git push` (nor any git command) is spelled in the agent, nor a process started but
    through the sandbox (no subprocess, os.system/exec*/spawn*, asyncio subprocesses)."""
    for module, path in module_files(["bot/agent"]).items():
        commands = [s for s in _strings(path) if s == "git" or s.startswith("git ")]
        assert commands == [], f"bot/agent/{path.name} spells {commands}"
        calls = [
            name
            for _, name in _calls(path)
            if name.startswith(("os.exec", "os.spawn", "os.posix_spawn", "pty.spawn"))
            or name in ("os.system", "os.popen", "os.fork")
            or name.startswith("asyncio.create_subprocess")
        ]
        assert calls == [], f"{module} calls {calls}"


def test_the_configuration_imports_nothing_of_the_agent(graph: dict[str, set[str]]) -> None:
    config = [m for m in graph if m == "bot.config" or m.startswith("bot.config.")]
    assert "bot.config.settings" in config
    for module in config:
        assert _reaches(graph, module, ["bot.agent"]) == [], module


def test_at_most_ten_loose_modules_in_bot() -> None:
    loose = sorted(p.name for p in (ROOT / "bot").glob("*.py"))
    assert len(loose) <= 10, loose


def test_product_code_never_imports_the_standins() -> None:
    for module, path in module_files().items():
        if module.startswith("bot.demo"):
            continue  # the demo plays against the stand-ins (shared/ARCHITECTURE.md allows it)
        standins = sorted(n for n in imported_names(module, path) if n.split(".")[0] == "standins")
        assert standins == [], f"{module} imports {standins}"


def test_the_wheel_ships_the_product_and_no_standin(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("shipmate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "bot/app.yml" in names and "bot/app.py" in names and "handlers/__init__.py" in names
    assert [n for n in names if n.startswith("standins/") or "/testing/" in n] == []
    assert [n for n in names if n.startswith("tests/")] == []


def _calls(path: Path) -> Iterable[tuple[int, str]]:
    """(line, dotted name) of every call whose callee is a name or an attribute chain."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            parts: list[str] = []
            callee = node.func
            while isinstance(callee, ast.Attribute):
                parts.append(callee.attr)
                callee = callee.value
            if isinstance(callee, ast.Name):
                parts.append(callee.id)
                yield node.lineno, ".".join(reversed(parts))


HTTP_CLIENTS = (
    "httpx.AsyncClient",
    "httpx.Client",
    "AsyncClient",
    "Client",
    "GitHub",
    "urlopen",
    "urllib.request.urlopen",
    "http.client.HTTPConnection",
    "http.client.HTTPSConnection",
    "HTTPConnection",
    "HTTPSConnection",
)
# Outside bot/github/, the only HTTP clients, and why they are not GitHub's door.
HTTP_ALLOWED = {
    # Deploy logs come from hosts the repository lists (never with a GitHub token).
    "bot/triggers/deploy_log.py",
    # The egress proxy forwards the sandbox's own requests; it holds no GitHub credential.
    "bot/sandbox/forwarding.py",
}


def test_only_bot_github_opens_http_clients() -> None:
    for module, path in module_files().items():
        relative = str(path.relative_to(ROOT))
        if relative.startswith("bot/github/") or relative in HTTP_ALLOWED:
            continue
        made = [f"{relative}:{line} {name}" for line, name in _calls(path) if name in HTTP_CLIENTS]
        assert made == [], made


def test_the_http_client_check_sees_a_client(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text(
        "import httpx\nasync def f():\n    async with httpx.AsyncClient() as c:\n        pass\n"
    )
    assert [name for _, name in _calls(sample)] == ["httpx.AsyncClient"]


def _sized_files() -> list[Path]:
    return sorted(
        p for room in ("bot", "handlers", "standins") for p in (ROOT / room).rglob("*.py")
    )


def _oversize(path: Path) -> list[str]:
    text = path.read_text()
    lines = text.count("\n")
    found = [f"{lines} lines"] if lines > 300 else []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > 50:
                found.append(f"{node.name}: {length} lines")
    return found


@pytest.mark.parametrize("path", _sized_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_are_small(path: Path) -> None:
    """No module over 300 lines and no function over 50, in the product and the stand-ins."""
    assert _oversize(path) == []


# `github.rest.pulls.async_get(...)`, or `rest.pulls.async_get(...)` from `rest = github.rest`.
REST_CALL = re.compile(r"(^|\.)rest\.\w+\.\w+$")


def test_only_bot_github_calls_githubs_rest_api_directly() -> None:
    """Outside bot/github/, GitHub is reached through `RepoClient` and `GitHubApp` (their retry
    policy, their audit): nothing reads a githubkit client's `.rest` itself."""
    for module, path in module_files().items():
        relative = str(path.relative_to(ROOT))
        if relative.startswith("bot/github/"):
            continue
        direct = [
            f"{line} {name}"
            for line, name in _calls(path)
            if REST_CALL.search(name) or name.endswith((".arequest", ".graphql"))
        ]
        assert direct == [], f"{relative} lines {direct}"


# The rooms from the top down: a module imports only its own room and the rooms below it.
LAYERS = (
    "bot.cli",
    "bot.demo",  # shipmate demo: the stand-ins and the whole app, started together
    "bot.app",
    "handlers",
    "bot.intake",
    "bot.evaluation",
    "bot.runs",
    "bot.triggers",
    "bot.jobs",
    "bot.db",
    "bot.github",
    "bot.logs",
    "bot.agent",
    "bot.sandbox",
    "bot.security",
    "bot.config",
    "bot",
)


def room_of(module: str) -> str:
    return next(room for room in LAYERS if module == room or module.startswith(room + "."))


# The imports that go up, and why they may: checking SHIPMATE_EGRESS_ALLOW_NETWORKS and image
# references (SHIPMATE_DEFAULT_IMAGE, `environment: {image}`) when settings or a repository's
# config load needs the sandbox's CIDR and reference parsers, pure functions of modules that
# import nothing of bot above the sandbox (the cycle test holds them to it).
UPWARD_ALLOWED = {
    ("bot.config.settings", "bot.sandbox.destinations"),
    ("bot.config.settings", "bot.sandbox.image"),
    ("bot.config.settings", "bot.sandbox"),
    ("bot.config.repo", "bot.sandbox.image"),
    ("bot.config.repo", "bot.sandbox"),
}


def test_imports_run_down_the_layers(graph: dict[str, set[str]]) -> None:
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if LAYERS.index(room_of(target)) < LAYERS.index(room_of(module))
        and (module, target) not in UPWARD_ALLOWED
    )
    assert upward == []
    # The parser's module stays free of bot (its package's __init__ runs on import, but
    # imports nothing back from config's room).
    assert {t for t in graph["bot.sandbox.destinations"] if t.startswith("bot.")} <= {"bot.sandbox"}


def test_every_module_has_a_room(graph: dict[str, set[str]]) -> None:
    rooms = {room_of(module) for module in graph}
    loose = sorted(m for m in graph if room_of(m) == "bot" and m != "bot")
    assert loose == [] and "bot.app" in rooms
