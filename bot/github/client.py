"""The REST calls Shipmate makes on one repository, each through the one retry policy.

`RepoClient` is composed of one group of calls per concern: the repository and its files
(`bot.github.contents`), the conversation on an issue or PR (`conversation`), pull requests
(`pulls`), checks and statuses (`checks`), Actions (`actions`) and deployments (`deployments`),
all on `bot.github.calls.RepoCalls`, which passes every text it sends through one outbound
redaction (`Outbound`; `outbound_for` makes the one that knows the operator's secrets). Auth
lives in `bot.github.auth`, the retry policy in `bot.github.retry`, the answer types in
`bot.github.models`; all are re-exported here. Calls use githubkit's typed methods.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.config import Settings
from bot.github.actions import ActionsCalls
from bot.github.auth import (
    HANDLER,
    PUSH,
    GitHubApp,
    InstallationToken,
    ScopedInstallationAuthStrategy,
)
from bot.github.calls import AuditHook
from bot.github.checks import CheckCalls
from bot.github.contents import ContentCalls
from bot.github.conversation import ConversationCalls
from bot.github.deployments import DeploymentCalls
from bot.github.manifest import github_web_url
from bot.github.models import (
    CheckRun,
    CheckSuite,
    CombinedStatus,
    Comment,
    CommitStatus,
    Deployment,
    DeploymentStatus,
    Job,
    Permission,
    PullRequest,
    Reaction,
    ReviewComment,
    WorkflowRun,
)
from bot.github.pulls import PullCalls
from bot.github.retry import RetryPolicy
from bot.sandbox.operator_secrets import held_secrets
from bot.security.redact import GITHUB_HOSTS, Outbound

__all__ = [
    "HANDLER",
    "PUSH",
    "AuditHook",
    "CheckRun",
    "CheckSuite",
    "CombinedStatus",
    "Comment",
    "CommitStatus",
    "Deployment",
    "DeploymentStatus",
    "GitHubApp",
    "InstallationToken",
    "Job",
    "Outbound",
    "Permission",
    "PullRequest",
    "Reaction",
    "RepoClient",
    "RetryPolicy",
    "ReviewComment",
    "ScopedInstallationAuthStrategy",
    "WorkflowRun",
    "outbound_for",
]


class RepoClient(
    ContentCalls, ConversationCalls, PullCalls, CheckCalls, ActionsCalls, DeploymentCalls
):
    """The calls Shipmate makes on one repository ("owner/name"), each through the retry policy.
    Every write (comment, reaction, label, PR, check run) is reported to `audit`, and every text
    it sends for people to read passes `outbound`. With
    `replies` (a delivery's job), each comment is posted once whatever the job's attempts
    (bot/github/replies.py)."""


def outbound_for(settings: Settings) -> Outbound:
    """The outbound redaction of a client acting for Shipmate: every secret the process holds
    (the same the logs' redactor knows; a run adds its own as it learns them); links only to
    GitHub (github.com, or the GitHub Enterprise host Shipmate talks to and the one whose pages
    a pull request's URL names: `<sub>.ghe.com` for the API at `api.<sub>.ghe.com`) and to
    Shipmate's public address (a run's page)."""
    hosts = list(GITHUB_HOSTS)
    api_url = settings.github_api_url
    for url in (api_url, github_web_url(api_url), settings.public_url):
        host = urlsplit(url or "").hostname
        if host and not any(host == h or host.endswith("." + h) for h in hosts):
            hosts.append(host)
    return Outbound(held_secrets(settings), tuple(hosts))
