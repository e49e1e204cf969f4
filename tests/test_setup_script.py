"""scripts/setup on a machine whose python3 cannot make a virtualenv: it asks apt for
python3-venv (as root), and for wrk only when SHIPMATE_SETUP_WRK=1."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FAKE_PYTHON3 = """#!/bin/sh
# A python3 without ensurepip: `-c` imports fail; `-m venv DIR` makes a stub interpreter.
if [ "$1" = "-c" ]; then exit 1; fi
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin" && printf '#!/bin/sh\\nexit 0\\n' > "$3/bin/python" && chmod +x "$3/bin/python"
  exit 0
fi
exit 1
"""


def _tool(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run_setup(tmp_path: Path, **env: str) -> list[str]:
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup", tree / "scripts" / "setup")
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "apt.log"
    _tool(fake, "python3", FAKE_PYTHON3)
    _tool(fake, "apt-get", f'#!/bin/sh\necho "$@" >> {log}\n')
    for present in ("bwrap", "git"):
        _tool(fake, present, "#!/bin/sh\nexit 0\n")
    for needed in ("dirname", "id", "mkdir", "chmod", "sh"):
        (fake / needed).symlink_to(shutil.which(needed) or needed)
    path = str(fake)  # nothing else: the host's own wrk or python3 must not be found
    result = subprocess.run(
        ["/bin/bash", str(tree / "scripts" / "setup")],
        env={"PATH": path, "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tree / ".venv" / "bin" / "python").exists()
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.skipif(os.geteuid() != 0, reason="the script installs with apt only as root")
def test_installs_python3_venv_when_venv_cannot_work(tmp_path: Path) -> None:
    calls = _run_setup(tmp_path)
    installs = [c for c in calls if c.startswith("install")]
    assert len(installs) == 1 and "python3-venv" in installs[0].split()
    assert "wrk" not in installs[0].split()


@pytest.mark.skipif(os.geteuid() != 0, reason="the script installs with apt only as root")
def test_installs_wrk_when_asked(tmp_path: Path) -> None:
    calls = _run_setup(tmp_path, SHIPMATE_SETUP_WRK="1")
    installs = [c for c in calls if c.startswith("install")]
    assert len(installs) == 1 and {"python3-venv", "wrk"} <= set(installs[0].split())
