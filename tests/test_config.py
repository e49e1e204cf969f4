from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bot.app import load_settings
from bot.cli import main
from bot.config import ConfigError, RepoConfigError, Settings, parse_repo_config


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_secrets_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPMATE_WEBHOOK_SECRET", "new-secret, old-secret")
    assert Settings.load().secrets == ["new-secret", "old-secret"]


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.load(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve()}/shipmate.db"


def test_bad_database_url_names_the_setting() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(database_url="not a url")
    assert info.value.setting == "SHIPMATE_DATABASE_URL"


def test_missing_key_file_names_the_setting_and_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(app_id=1, private_key_path=tmp_path / "nope.pem")
    assert info.value.setting == "SHIPMATE_PRIVATE_KEY_PATH"
    assert "nope.pem" in str(info.value)


def test_malformed_pem_is_refused() -> None:
    with pytest.raises(ConfigError, match="SHIPMATE_PRIVATE_KEY: not a valid PEM"):
        Settings.load(app_id=1, private_key="-----BEGIN RSA PRIVATE KEY-----\nxx\n")


def test_non_rsa_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="RSA"):
        Settings.load(app_id=1, private_key=_pem(ec.generate_private_key(ec.SECP256R1())))


def test_key_with_escaped_newlines_is_accepted() -> None:
    pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    settings = Settings.load(app_id=1, private_key=pem.replace("\n", "\\n"))
    assert settings.private_key_pem() == pem


def test_the_key_is_parsed_once_however_often_the_secrets_are_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each delivery's job asks for the known secrets; parsing an RSA key costs ~60 ms."""
    from bot.config import settings as settings_module

    pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    loads: list[bytes] = []
    load = settings_module.load_pem_private_key

    def counted(data: bytes, password: bytes | None) -> Any:
        loads.append(data)
        return load(data, password=password)

    monkeypatch.setattr(settings_module, "load_pem_private_key", counted)
    settings = Settings.load(app_id=1, private_key=pem)
    for _ in range(50):
        assert pem.strip() in settings.known_secrets()
    assert len(loads) == 1


def test_cli_prints_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("SHIPMATE_APP_ID", "1")
    monkeypatch.setenv("SHIPMATE_PRIVATE_KEY_PATH", str(tmp_path / "missing.pem"))
    assert main(["worker"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("shipmate: configuration error: SHIPMATE_PRIVATE_KEY_PATH")


def test_repo_config_defaults_when_absent() -> None:
    config = parse_repo_config(None)
    assert config.label == "shipmate:fix"
    assert config.is_protected(".github/workflows/ci.yml")
    assert config.is_protected("app/migrations/0001_init.py")
    assert config.is_protected("migrations/0001_init.py")
    assert not config.is_protected("src/parser.py")


def test_repo_config_allow_paths_opt_in() -> None:
    config = parse_repo_config("allow_paths: ['migrations/*']\n")
    assert not config.is_protected("migrations/0002.py")


def test_repo_config_error_names_the_line() -> None:
    text = "setup:\n  - pip install -e .\nnetwork:\n  allow: [pypi.org]\n  deny: [x]\n"
    with pytest.raises(RepoConfigError) as info:
        parse_repo_config(text)
    assert info.value.line == 5
    assert "network.deny" in str(info.value)


def test_repo_config_wrong_type_names_the_line() -> None:
    with pytest.raises(RepoConfigError) as info:
        parse_repo_config("label: fix\nmax_steps: many\n")
    assert info.value.line == 2


def test_the_scope_budget_defaults_to_ten_files_and_400_lines() -> None:
    assert parse_repo_config(None).scope.model_dump() == {"max_files": 10, "max_lines": 400}
    config = parse_repo_config("test: pytest\nscope: {max_files: 3}\n")
    assert (config.scope.max_files, config.scope.max_lines) == (3, 400)
    config = parse_repo_config("scope:\n  max_files: 30\n  max_lines: 2000\n")
    assert (config.scope.max_files, config.scope.max_lines) == (30, 2000)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("test: x\nscope: {max_files: 0}\n", 2, "scope.max_files: Input should be greater than 0"),
        ("scope:\n  max_lines: -5\n", 2, "scope.max_lines: Input should be greater than 0"),
        ("scope:\n  max_lines: '400'\n", 2, "scope.max_lines: Input should be a valid integer"),
        ("scope:\n  max_files: true\n", 2, "scope.max_files: Input should be a valid integer"),
        ("scope:\n  files: 3\n", 2, "scope.files: Extra inputs are not permitted"),
        ("label: x\nscope: 10\n", 2, "scope: give a mapping, e.g. `scope: {max_files: 10"),
    ],
)
def test_a_bad_scope_budget_is_reported_with_its_line(text: str, line: int, message: str) -> None:
    with pytest.raises(RepoConfigError) as info:
        parse_repo_config(text)
    assert info.value.line == line
    assert message in str(info.value)


def test_repo_config_bad_yaml_names_the_line() -> None:
    with pytest.raises(RepoConfigError) as info:
        parse_repo_config("setup:\n  - a\n - b: [\n")
    assert info.value.line is not None


def test_a_model_without_a_price_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run could keep neither its ledger nor its cost budget: say so at start-up."""
    monkeypatch.delenv("SHIPMATE_PRICES", raising=False)
    with pytest.raises(ConfigError) as info:
        load_settings(model="house-model-7")
    assert info.value.setting == "SHIPMATE_MODEL" and "SHIPMATE_PRICES" in str(info.value)
    monkeypatch.setenv("SHIPMATE_PRICES", '{"house-model": {"input": 1, "output": 2}}')
    assert load_settings(model="house-model-7").model == "house-model-7"
    monkeypatch.setenv("SHIPMATE_PRICES", "not json")
    with pytest.raises(ConfigError) as info:
        load_settings(model="house-model-7")
    assert info.value.setting == "SHIPMATE_PRICES"
