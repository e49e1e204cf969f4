"""Shipmate's own settings, from the environment (`SHIPMATE_*`).

Nothing here reads the environment or a file at import time: `Settings.load()` does, in `main`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.config.errors import ConfigError


class Settings(BaseSettings):
    """Process-wide settings. Field `x` is read from `SHIPMATE_X`."""

    model_config = SettingsConfigDict(env_prefix="SHIPMATE_", extra="ignore")

    webhook_secret: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    app_id: int | None = None
    app_slug: str | None = None
    private_key: SecretStr | None = None
    private_key_path: Path | None = None
    database_url: str | None = None
    github_api_url: str = "https://api.github.com"
    data_dir: Path = Path(".shipmate")
    # The dashboard: a token for headless or local installs, the App's OAuth client for signing
    # in with GitHub (saved by the manifest registration), and the address GitHub users reach.
    admin_token: SecretStr | None = None
    github_client_id: str | None = None
    github_client_secret: SecretStr | None = None
    public_url: str | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "info"

    # The agent.
    model: str = "claude-sonnet-4-6"
    model_provider: Literal["anthropic", "bedrock", "vertex"] = "anthropic"
    model_region: str | None = None  # Bedrock: the AWS region; Vertex: the Google Cloud region
    model_project: str | None = None  # Vertex: the Google Cloud project id
    max_steps: int = 40
    max_cost_usd: float = 2.0
    run_timeout_seconds: float = 1800.0

    # Budgets beyond one run (None: no limit); a repository's config may only narrow them.
    repo_monthly_budget_usd: float | None = Field(default=None, gt=0)
    installation_monthly_budget_usd: float | None = Field(default=None, gt=0)
    # What the ledger and `shipmate report` count in dollars besides tokens (bot/runs/costs.py).
    sandbox_usd_per_hour: float = Field(default=0.10, ge=0)
    ci_usd_per_minute: float = Field(default=0.008, ge=0)
    engineer_hourly_usd: float = Field(default=100.0, gt=0)
    engineer_minutes_per_change: float = Field(default=120.0, gt=0)
    review_minutes_per_round: float = Field(default=15.0, ge=0)

    # The queue. "auto": procrastinate on PostgreSQL, the SQL queue on SQLite; "sql" keeps the
    # SQL queue on PostgreSQL too.
    queue_backend: Literal["auto", "sql", "procrastinate"] = "auto"
    # Runs a worker takes at once; unset, as many as the host's memory and CPUs allow
    # (bot/jobs/capacity.py). `shipmate worker --concurrency N` sets it too.
    worker_concurrency: int | None = Field(default=None, ge=1)
    # Slots for webhook jobs alone, on top of worker_concurrency: 👀 never waits behind runs.
    webhook_concurrency: int = Field(default=2, ge=1)
    job_lease_seconds: float = 60.0
    job_max_attempts: int = 5
    # procrastinate (PostgreSQL): each worker beats this often; one silent for
    # `worker_stalled_seconds` is taken for dead and its jobs run again elsewhere.
    worker_heartbeat_seconds: float = Field(default=10.0, gt=0)
    worker_stalled_seconds: float = Field(default=30.0, gt=0)
    # On SIGTERM a worker takes no new job and gives the running ones this long to finish;
    # the rest are released, to run again.
    worker_grace_seconds: float = Field(default=30.0, ge=0)
    # Retention: deliveries, finished jobs, transcripts and caches older than this go.
    retention_days: float = Field(default=30.0, gt=0)

    # Secrets repositories may request by name: the operator's declarations (YAML or JSON).
    secrets_file: Path | None = None
    # Address ranges (CIDRs) the sandbox's egress may reach beyond the public internet.
    egress_allow_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # `shipmate serve`: its web server processes (`--workers`); unset, see `serve_processes`.
    web_processes: int | None = Field(default=None, ge=1)
    # A connection that has not sent a request's headers, or its body, within these is closed
    # (a slow client holds a connection and its memory for as long as it is let).
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_timeout_seconds: float = Field(default=60.0, gt=0)

    # Environments: the OCI image a sandbox runs on when the repository names none (unset:
    # the host's system folders); registries repositories may name (empty: any); registries
    # reached over plain HTTP (host:port); credentials (a containers-auth.json file).
    default_image: str | None = None
    allowed_registries: Annotated[list[str], NoDecode] = Field(default_factory=list)
    insecure_registries: Annotated[list[str], NoDecode] = Field(default_factory=list)
    registry_auth_file: Path | None = None
    image_cache_mib: int = Field(default=20480, ge=16)

    @field_validator("webhook_secret", "allowed_registries", "insecure_registries", mode="before")
    @classmethod
    def _split_secrets(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("egress_allow_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            from bot.sandbox.destinations import parse_networks

            parse_networks(str(part) for part in value)
        return value

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Read the environment; raise `ConfigError` naming the first bad setting."""
        try:
            settings = cls(**overrides)
        except ValidationError as exc:
            error = exc.errors()[0]
            name = "SHIPMATE_" + str(error["loc"][0]).upper() if error["loc"] else "SHIPMATE_*"
            raise ConfigError(name, error["msg"]) from None
        settings.check()
        return settings

    @property
    def secrets(self) -> list[str]:
        return [secret.get_secret_value() for secret in self.webhook_secret]

    def known_secrets(self) -> tuple[str, ...]:
        """Texts that must never appear in anything Shipmate posts: the App's private key and
        the webhook secrets."""
        known = list(self.secrets)
        for extra in (self.admin_token, self.github_client_secret):
            if extra is not None:
                known.append(extra.get_secret_value())
        if self.private_key is not None or self.private_key_path is not None:
            known.append(self.private_key_pem().strip())
        return tuple(k for k in known if k)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'shipmate.db').resolve()}"

    @property
    def has_app_credentials(self) -> bool:
        return self.app_id is not None and (
            self.private_key is not None or self.private_key_path is not None
        )

    def check(self) -> None:
        """Fail fast on settings that would only break later: the key and the database URL.
        (The model's provider and price are checked by `bot.app.load_settings`: this module
        imports nothing of the agent.)"""
        try:
            make_url(self.resolved_database_url)
        except ArgumentError as exc:
            raise ConfigError("SHIPMATE_DATABASE_URL", f"not a database URL ({exc})") from None
        if self.private_key is not None or self.private_key_path is not None:
            self.private_key_pem()
        self._check_image()

    def _check_image(self) -> None:
        from bot.sandbox.image import ImageError, RegistryPolicy, parse_reference

        if self.default_image:
            try:
                reference = parse_reference(self.default_image)
                RegistryPolicy(self.allowed_registries).check(reference)
            except ImageError as exc:
                raise ConfigError("SHIPMATE_DEFAULT_IMAGE", str(exc)) from None
        if self.registry_auth_file is not None and not self.registry_auth_file.is_file():
            raise ConfigError(
                "SHIPMATE_REGISTRY_AUTH_FILE", f"{self.registry_auth_file} is not a file"
            )

    def private_key_pem(self) -> str:
        """The App's private key as PEM text, checked to be an RSA private key."""
        if self.private_key is not None:
            setting, pem = "SHIPMATE_PRIVATE_KEY", self.private_key.get_secret_value()
            # Many deployment tools cannot hold newlines in an environment variable.
            pem = pem.replace("\\n", "\n")
        elif self.private_key_path is not None:
            setting = "SHIPMATE_PRIVATE_KEY_PATH"
            try:
                pem = self.private_key_path.read_text()
            except OSError as exc:
                raise ConfigError(
                    setting, f"cannot read {self.private_key_path}: {exc.strerror}"
                ) from None
        else:
            raise ConfigError("SHIPMATE_PRIVATE_KEY", "not set (nor SHIPMATE_PRIVATE_KEY_PATH)")
        return _rsa_private_key(setting, pem)


@functools.lru_cache(maxsize=8)
def _rsa_private_key(setting: str, pem: str) -> str:
    """`pem`, checked to be an RSA private key. Once per text: loading one takes ~60 ms of CPU,
    and every delivery's job asks for the known secrets (a refusal is not kept: it raises)."""
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(setting, f"not a valid PEM private key ({exc})") from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(setting, "GitHub App keys are RSA keys; this is another kind")
    return pem
