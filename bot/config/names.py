"""Names with rules: Shipmate's own settings (never a repository's secret), environment
variable names, and branch-safe slugs."""

from __future__ import annotations

import re

# Shipmate's own settings and the model provider's credentials: never a repository secret, not
# even when the operator declares one by such a name (bot/sandbox/operator_secrets.py).
SHIPMATE_SETTING_PREFIXES = (
    "SHIPMATE_",
    "ANTHROPIC_",
    "CLAUDE_",
    "AWS_",
    "GOOGLE_",
    "GCLOUD_",
    "CLOUDSDK_",
)
# The model's credentials, secrets both (bot.agent.model.CREDENTIAL_VARIABLES: the agent imports
# nothing of the configuration).
MODEL_CREDENTIALS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_shipmate_setting(name: str) -> bool:
    return name.upper().startswith(SHIPMATE_SETTING_PREFIXES)


_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(text: str, limit: int = 40) -> str:
    """A branch-safe slug: `Fix the flaky test!` -> `fix-the-flaky-test`."""
    slug = _SLUG.sub("-", text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "change"
