"""The Docker image as its file says it is built and run (no Docker daemon in the test run):
the documented run line gives the sandbox what it needs, the image installs the sandbox's tools
and the PostgreSQL driver, and the README shows the same run line."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
# Docker's defaults refuse what bubblewrap does: unshare (seccomp), mount (AppArmor), a fresh
# /proc while parts of the container's are masked (systempaths).
SANDBOX_NEEDS = (
    "--security-opt seccomp=unconfined",
    "--security-opt apparmor=unconfined",
    "--security-opt systempaths=unconfined",
)


def _run_line(text: str) -> str:
    """The one line that starts Shipmate's image (`docker run -p …`)."""
    lines = (line.lstrip("# ") for line in text.splitlines())
    (found,) = [line for line in lines if line.startswith("docker run -p")]
    return found


def test_the_run_line_gives_the_sandbox_what_it_needs() -> None:
    line = _run_line(DOCKERFILE)
    assert all(option in line for option in SANDBOX_NEEDS), line
    assert "-p 3000:3000" in line and "-v shipmate-data:/data" in line
    assert line.endswith(" shipmate")
    readme = (ROOT / "README.md").read_text()
    assert _run_line(readme) == line


def test_the_image_has_the_sandboxs_tools_and_the_postgresql_driver() -> None:
    packages = re.search(r"apt-get install -y --no-install-recommends ([^\\&\n]+)", DOCKERFILE)
    assert packages is not None
    # bwrap, unshare (shipmate doctor's essentials), git (checkouts), skopeo (environments).
    assert {"bubblewrap", "util-linux", "git", "skopeo", "ca-certificates"} <= set(
        packages.group(1).split()
    )
    assert 'pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]"' in DOCKERFILE
    assert '"shipmate[postgres]"' in DOCKERFILE and "import psycopg" in DOCKERFILE
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("psycopg") for dep in extra["optional-dependencies"]["postgres"])
    assert 'CMD ["shipmate", "serve", "--host", "0.0.0.0", "--port", "3000"]' in DOCKERFILE
