"""The repository's own configuration, `.github/shipmate.yml`: parsed, checked, and any error
placed on its line."""

from __future__ import annotations

import fnmatch
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.config.errors import RepoConfigError
from bot.config.names import ENV_NAME, is_shipmate_setting

DEFAULT_PROTECTED_PATHS: tuple[str, ...] = (
    ".github/workflows/**",
    "**/auth/**",
    "**/*auth*.py",
    "**/migrations/**",
    "**/alembic/**",
    "**/billing/**",
    "**/*billing*",
)


class NetworkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow: list[str] = Field(default_factory=list)


class EnvironmentConfig(BaseModel):
    """`environment:` — the OCI image the sandbox runs on: `image: REF`, or `devcontainer: PATH`
    (a devcontainer.json in the repository, whose `image` is used)."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = None
    devcontainer: str | None = None

    @model_validator(mode="after")
    def _one(self) -> EnvironmentConfig:
        if (self.image is None) == (self.devcontainer is None):
            raise ValueError("give exactly one of `image` or `devcontainer`")
        if self.image is not None:
            from bot.sandbox.image import ImageError, parse_reference

            try:
                parse_reference(self.image)
            except ImageError as exc:
                raise ValueError(str(exc)) from None
        return self


class ScopeConfig(BaseModel):
    """`scope:` — the largest change published without `/shipmate apply --large`: changed files
    and changed lines (added plus removed), generated files (lock files, snapshots) not counted
    (bot/runs/scope.py)."""

    model_config = ConfigDict(extra="forbid")

    max_files: StrictInt = Field(default=10, gt=0)
    max_lines: StrictInt = Field(default=400, gt=0)


class RepoConfig(BaseModel):
    """`.github/shipmate.yml`. Every field is optional: the file narrows or extends defaults."""

    model_config = ConfigDict(extra="forbid")

    instructions: str = ""
    setup: list[str] = Field(default_factory=list)
    test: str | None = None
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    # Names of secrets the operator declared (SHIPMATE_SECRETS_FILE): their values and the
    # hosts they may go to come from the declaration, never from this file.
    secrets: list[str] = Field(default_factory=list)
    protected_paths: list[str] = Field(default_factory=lambda: list(DEFAULT_PROTECTED_PATHS))
    # Paths a human opted in to although they match protected_paths.
    allow_paths: list[str] = Field(default_factory=list)
    label: str = "shipmate:fix"
    max_steps: int | None = Field(default=None, gt=0)
    max_cost_usd: float | None = Field(default=None, gt=0)
    timeout_seconds: float | None = Field(default=None, gt=0)
    # This repository's model spend a calendar month; narrows SHIPMATE_REPO_MONTHLY_BUDGET_USD.
    monthly_budget_usd: float | None = Field(default=None, gt=0)
    max_attempts_per_failure: int = Field(default=3, gt=0)
    max_attempts_per_pr: int = Field(default=5, gt=0)
    deploy_log_hosts: list[str] = Field(default_factory=list)
    environment: EnvironmentConfig | None = None
    scope: ScopeConfig = Field(default_factory=ScopeConfig)

    @field_validator("secrets", mode="before")
    @classmethod
    def _secret_names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            raise ValueError(
                "list the names of secrets the operator declared, e.g. `secrets: [NPM_TOKEN]`; "
                "the hosts a secret may go to come from the operator's SHIPMATE_SECRETS_FILE, "
                "not from this file"
            )
        for name in value if isinstance(value, list) else []:
            if not isinstance(name, str) or not ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a secret's name (an environment variable name)")
            if is_shipmate_setting(name):
                raise ValueError(f"{name} is one of Shipmate's own settings, never a secret")
        return value

    @field_validator("scope", mode="before")
    @classmethod
    def _scope_mapping(cls, value: Any) -> Any:
        if not isinstance(value, dict | ScopeConfig):
            raise ValueError("give a mapping, e.g. `scope: {max_files: 10, max_lines: 400}`")
        return value

    def is_protected(self, path: str) -> bool:
        # CI definitions stay out of reach whatever the file says: the App never asks for
        # the `workflows` permission, and a change to them could run with the repo's secrets.
        if path.startswith(".github/workflows/"):
            return True
        if any(fnmatch.fnmatch(path, pattern) for pattern in self.allow_paths):
            return False
        return any(_glob_match(path, pattern) for pattern in self.protected_paths)


def _glob_match(path: str, pattern: str) -> bool:
    if fnmatch.fnmatch(path, pattern):
        return True
    # "**/x/**" also matches "x/..." at the top level.
    return pattern.startswith("**/") and fnmatch.fnmatch(path, pattern[3:])


def parse_repo_config(text: str | None) -> RepoConfig:
    """Parse the file's text (None or empty: the defaults). Raise `RepoConfigError`."""
    if text is None or not text.strip():
        return RepoConfig()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise RepoConfigError(f"not valid YAML: {problem}", line) from None
    if data is None:
        return RepoConfig()
    if not isinstance(data, dict):
        raise RepoConfigError("the top level must be a mapping of settings", 1)
    try:
        return RepoConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [part for part in error["loc"]]
        key = ".".join(str(part) for part in loc)
        message = error["msg"].removeprefix("Value error, ")
        return _raise_at(node, loc, f"{key}: {message}")


def _raise_at(node: yaml.Node | None, loc: list[int | str], message: str) -> RepoConfig:
    line = _line_of(node, loc)
    raise RepoConfigError(message, line)


def _line_of(node: yaml.Node | None, loc: list[int | str]) -> int | None:
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            if match is None:
                key = next((k for k, _ in node.value if k.value == part), None)
                return key.start_mark.line + 1 if key is not None else best
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return best
            node = node.value[part]
        else:
            return best
        best = node.start_mark.line + 1
    return best
