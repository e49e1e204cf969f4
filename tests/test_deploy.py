"""deploy/: the compose file's Shipmate services run real `shipmate` subcommands with options
the CLI takes, on the repository's Dockerfile, with env files that name only settings that
exist and that load; two web processes, two workers, one PostgreSQL, migrated first. (Docker
does not run here: this reads the files as Docker Compose would.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.engine import make_url

from bot.cli import _parser
from bot.config import Settings
from bot.intake.dashboard.session import KEY_FILE, session_key

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SETTING = re.compile(r"\bSHIPMATE_[A-Z0-9_]+")


def _compose() -> dict[str, Any]:
    found = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(found, dict)
    return found


def _shipmate_services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    return {name: s for name, s in services.items() if s.get("image") == "shipmate:local"}


def _env_file(name: str) -> dict[str, str]:
    values = {}
    for line in (DEPLOY / name).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _env_files(service: dict[str, Any]) -> list[str]:
    files = service.get("env_file") or []
    return [files] if isinstance(files, str) else list(files)


def test_every_shipmate_service_runs_a_command_the_cli_takes() -> None:
    services = _shipmate_services()
    commands = {}
    for name, service in services.items():
        argv = service["command"]
        assert argv[0] == "shipmate", name
        args = _parser().parse_args(argv[1:])  # argparse exits (2) on anything it refuses
        commands[name] = args
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"
    webs = [n for n, a in commands.items() if a.command == "serve"]
    assert len(webs) == 2 and all(commands[n].no_worker for n in webs)
    workers = [n for n, a in commands.items() if a.command == "worker"]
    assert len(workers) == 2
    assert [n for n, a in commands.items() if a.command == "migrate"] == ["migrate"]
    for name in webs + workers:  # each refuses an unmigrated database: migrate goes first
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    assert _compose()["services"]["migrate"]["depends_on"]["postgres"] == {
        "condition": "service_healthy"
    }


def test_every_setting_named_exists() -> None:
    named = set(SETTING.findall((DEPLOY / "compose.yaml").read_text()))
    for path in DEPLOY.glob("*.env"):
        named |= set(SETTING.findall(path.read_text()))
    unknown = sorted(n for n in named if n[len("SHIPMATE_") :].lower() not in Settings.model_fields)
    assert named and unknown == []


@pytest.fixture
def app_key(tmp_path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "app.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def test_each_roles_settings_load_and_reach_the_compose_postgres(
    monkeypatch: pytest.MonkeyPatch, app_key: Path
) -> None:
    services = _compose()["services"]
    postgres = {k: v for f in _env_files(services["postgres"]) for k, v in _env_file(f).items()}
    for name, service in _shipmate_services().items():
        values = {k: v for f in _env_files(service) for k, v in _env_file(f).items()}
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("SHIPMATE_PRIVATE_KEY_PATH", str(app_key))  # deploy/secrets/app.pem
        settings = Settings.load()
        url = make_url(settings.resolved_database_url)
        assert (url.drivername, url.host, url.port) == ("postgresql+psycopg", "postgres", 5432)
        assert (url.username, url.password, url.database) == (
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
            postgres["POSTGRES_DB"],
        )
        assert settings.app_id is not None and settings.secrets, name
        if service["command"][1] == "worker":
            assert "ANTHROPIC_API_KEY" in values
            grace = settings.worker_grace_seconds
            assert grace < float(service["stop_grace_period"].rstrip("s")), name
            assert set(service["security_opt"]) == {  # what the Dockerfile says the sandbox needs
                "seccomp=unconfined",
                "apparmor=unconfined",
                "systempaths=unconfined",
            }
        if service["command"][1] == "serve":
            assert settings.admin_token is not None
        for key in values:
            monkeypatch.delenv(key)


def test_the_web_processes_share_their_data_and_the_dashboard_reads_the_workers_runs() -> None:
    services = _shipmate_services()
    volumes = {name: service.get("volumes", []) for name, service in services.items()}
    assert "web-data:/data" in volumes["web1"] and "web-data:/data" in volumes["web2"]
    for name in ("web1", "web2", "worker1", "worker2"):
        assert "runs:/data/runs" in volumes[name]
    assert len({v[0] for n, v in volumes.items() if n.startswith("worker")}) == 2  # their own
    nginx = (DEPLOY / "nginx.conf").read_text()
    for name in ("web1", "web2"):
        port = services[name]["command"][services[name]["command"].index("--port") + 1]
        assert f"server {name}:{port}" in nginx
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert '".[postgres]"' in dockerfile and "/data/runs" in dockerfile


def test_web_processes_starting_together_agree_on_the_cookie_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: session_key(tmp_path), range(32)))
    (key,) = keys
    assert len(key) == 64 and [p.name for p in tmp_path.iterdir()] == [KEY_FILE]
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600
