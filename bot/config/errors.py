"""What goes wrong with configuration: a setting, a process's start, a repository's file."""

from __future__ import annotations


class ConfigError(Exception):
    """A setting is missing or wrong. `str()` is one line naming the setting and the reason."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"{setting}: {reason}")
        self.setting = setting
        self.reason = reason


class StartupError(Exception):
    """A process cannot start as things are (e.g. its database is not migrated). `str()` is
    one line saying why and what to run; the CLI prints it and exits 2."""


class RepoConfigError(Exception):
    """`.github/shipmate.yml` is invalid. `line` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__(f".github/shipmate.yml: {where}{message}")
        self.message = message
        self.line = line
