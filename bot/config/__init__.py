"""Configuration: Shipmate's own settings from the environment (`SHIPMATE_*`, settings.py) and
the repository's `.github/shipmate.yml` (repo.py), with their errors (errors.py).

Nothing here reads the environment or a file at import time: `Settings.load()` does, in `main`.
"""

from bot.config.errors import ConfigError, RepoConfigError, StartupError
from bot.config.names import SHIPMATE_SETTING_PREFIXES, is_shipmate_setting, slugify
from bot.config.repo import (
    DEFAULT_PROTECTED_PATHS,
    EnvironmentConfig,
    NetworkConfig,
    RepoConfig,
    ScopeConfig,
    parse_repo_config,
)
from bot.config.settings import Settings

__all__ = [
    "DEFAULT_PROTECTED_PATHS",
    "SHIPMATE_SETTING_PREFIXES",
    "ConfigError",
    "EnvironmentConfig",
    "NetworkConfig",
    "RepoConfig",
    "RepoConfigError",
    "ScopeConfig",
    "Settings",
    "StartupError",
    "is_shipmate_setting",
    "parse_repo_config",
    "slugify",
]
