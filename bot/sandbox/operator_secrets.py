"""Secrets a run may use: declared by the operator, requested by the repository by name.

A repository's `.github/shipmate.yml` used to name any variable of Shipmate's environment and a
host to send it to, so one file could walk off with the webhook secret, the model's API key or
the App's private key. Now the operator declares each secret in `SHIPMATE_SECRETS_FILE` (YAML or
JSON): where its value comes from (an environment variable or a file), which hosts may receive
it, and which repositories or installations may use it. A repository's `secrets:` lists names;
the hosts always come from the declaration. Shipmate's own settings can never be declared.

    secrets:
      NPM_TOKEN:
        env: CI_NPM_TOKEN              # or  file: /run/secrets/npm-token
        hosts: [registry.npmjs.org]    # HOST or HOST:PORT (no port: any port of that host)
        repositories: ["acme/*"]       # owner/name patterns; and/or installations: [12345]
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.config import ConfigError, Settings, is_shipmate_setting
from bot.config.names import MODEL_CREDENTIALS
from bot.sandbox.placeholders import parse_hosts

log = structlog.get_logger("shipmate.secrets")

SETTING = "SHIPMATE_SECRETS_FILE"
MAX_VALUE_BYTES = 64 * 1024
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Declaration(BaseModel):
    """One secret as the operator declares it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: Path | None = None
    hosts: list[str] = Field(min_length=1)
    repositories: list[str] = Field(default_factory=list)
    installations: list[int] = Field(default_factory=list)

    def allows(self, repository: str, installation: int | None) -> bool:
        return installation in self.installations or any(
            fnmatch.fnmatchcase(repository.lower(), pattern.lower())
            for pattern in self.repositories
        )


class DeclarationFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secrets: dict[str, Declaration] = Field(default_factory=dict)


@dataclass(frozen=True)
class Granted:
    """What a run gets: NAME -> (real value, hosts) for the sandbox, and why any requested
    secret was not granted (names and reasons only, never a value)."""

    secrets: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    refused: tuple[str, ...] = ()

    @property
    def values(self) -> list[str]:
        return [value for value, _ in self.secrets.values()]

    @property
    def reason(self) -> str:
        return ".github/shipmate.yml requests secrets this run cannot have: " + "; ".join(
            self.refused
        )


def load(settings: Settings) -> dict[str, Declaration]:
    """The operator's declarations (none without SHIPMATE_SECRETS_FILE); ConfigError, one line,
    naming the secret and the problem. Never echoes the file's text."""
    path = settings.secrets_file
    if path is None:
        return {}
    try:
        data: Any = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(SETTING, f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(SETTING, f"{path} is not valid YAML or JSON{where}") from None
    try:
        declared = DeclarationFile.model_validate(data or {}).secrets
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ConfigError(SETTING, f"{path}: {where}: {error['msg']}") from None
    for name, declaration in declared.items():
        _check(settings, name, declaration)
    return declared


def _check(settings: Settings, name: str, declaration: Declaration) -> None:
    def fail(reason: str) -> ConfigError:
        return ConfigError(SETTING, f"secret {name}: {reason}")

    if not NAME.match(name):
        raise fail("a secret's name must be an environment variable name")
    if is_shipmate_setting(name):
        raise fail("names one of Shipmate's own settings, which is never a repository secret")
    if (declaration.env is None) == (declaration.file is None):
        raise fail("say where its value comes from: exactly one of env: or file:")
    if declaration.env is not None and is_shipmate_setting(declaration.env):
        raise fail(f"env: {declaration.env} is one of Shipmate's own settings; never a secret")
    if declaration.file is not None and _own_file(settings, declaration.file):
        raise fail(f"file: {declaration.file} holds Shipmate's own credentials; never a secret")
    if not declaration.repositories and not declaration.installations:
        raise fail("say which repositories (e.g. ['acme/*']) or installations may use it")
    try:
        hosts = parse_hosts(declaration.hosts)
    except ValueError as exc:
        raise fail(f"hosts: {exc}") from None
    if any(host.startswith("*") for host, _ in hosts):
        raise fail("hosts: a secret goes to named hosts only, not to a wildcard")


def _own_file(settings: Settings, path: Path) -> bool:
    """Whether `path` is the App key, inside the data dir (where the manifest flow keeps the
    App's credentials), a model provider's credentials, or under /proc."""
    target = path.expanduser().resolve()
    own = [settings.data_dir.resolve()]
    if settings.private_key_path is not None:
        own.append(settings.private_key_path.expanduser().resolve())
    if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        own.append(Path(os.environ["GOOGLE_APPLICATION_CREDENTIALS"]).expanduser().resolve())
    # /proc/self/environ holds every setting of the process at once.
    own += [Path("~/.aws").expanduser().resolve(), Path("/proc")]
    return any(target == place or target.is_relative_to(place) for place in own)


def declared_values(settings: Settings) -> list[str]:
    """The values the operator's declarations hold now, for the log redactor (none when the
    file is absent or invalid: startup reports that)."""
    try:
        declared = load(settings)
    except ConfigError:
        return []
    values = (_value(declaration, os.environ)[0] for declaration in declared.values())
    return [value for value in values if value]


def held_secrets(settings: Settings) -> list[str]:
    """Every secret value the process holds, for both redactors (the logs' and what Shipmate
    posts on GitHub): `Settings.known_secrets` (webhook secrets, the App key, the admin token,
    the OAuth client secret), the key as set, the model's credentials and the values of the
    secrets the operator declared (as they are now)."""
    values = list(settings.known_secrets())
    if settings.private_key is not None:
        values.append(settings.private_key.get_secret_value())
    if settings.private_key is not None or settings.private_key_path is not None:
        with contextlib.suppress(ConfigError):
            values.append(settings.private_key_pem())
    values += [os.environ[name] for name in MODEL_CREDENTIALS if os.environ.get(name)]
    values.extend(declared_values(settings))
    return values


def grant(
    declared: Mapping[str, Declaration],
    requested: Sequence[str],
    *,
    repository: str,
    installation: int | None,
    environ: Mapping[str, str],
) -> Granted:
    """The requested secrets this repository may use, with their values read now; a name not
    declared, not allowed here, or without a value is refused with the reason."""
    secrets: dict[str, tuple[str, tuple[str, ...]]] = {}
    refused: list[str] = []
    for name in requested:
        declaration = declared.get(name)
        if declaration is None:
            refused.append(f"secret {name} is not declared by the operator ({SETTING})")
        elif not declaration.allows(repository, installation):
            refused.append(f"secret {name} is not declared for {repository}")
        else:
            value, problem = _value(declaration, environ)
            if problem:
                # The details (a path, a variable's name) are the operator's: the log has them,
                # the reason (shown on GitHub) does not.
                log.warning("secret.unavailable", secret=name, repo=repository, detail=problem)
                refused.append(f"secret {name} has no value on this host (Shipmate's log says why)")
            else:
                secrets[name] = (value, tuple(declaration.hosts))
    return Granted(secrets, tuple(refused))


def _value(declaration: Declaration, environ: Mapping[str, str]) -> tuple[str, str]:
    """(value, "") or ("", why there is none)."""
    if declaration.env is not None:
        value = environ.get(declaration.env, "")
        return (value, "") if value else ("", f"environment variable {declaration.env} is unset")
    assert declaration.file is not None
    try:
        with declaration.file.expanduser().open("rb") as handle:
            raw = handle.read(MAX_VALUE_BYTES + 1)
    except OSError as exc:
        return "", f"cannot read {declaration.file}: {exc.strerror}"
    if len(raw) > MAX_VALUE_BYTES:
        return "", f"{declaration.file} is larger than {MAX_VALUE_BYTES} bytes"
    value = raw.decode("utf-8", "replace").rstrip("\r\n")
    return (value, "") if value else ("", f"{declaration.file} is empty")
