"""The REST calls Shipmate makes on one repository, each through the one retry policy.

`RepoClient` is composed of one group of calls per concern: the repository and its files
(`bot.github.contents`), the conversation on an issue or PR (`conversation`), pull requests
(`pulls`), checks and statuses (`checks`), Actions (`actions`) and deployments (`deployments`),
all on `bot.github.calls.RepoCalls`. Auth lives in `bot.github.auth`, the retry policy in
`bot.github.retry`, the answer types in `bot.github.models`; all are re-exported here. Calls use
githubkit's typed methods.
"""

from __future__ import annotations

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
    "Permission",
    "PullRequest",
    "Reaction",
    "RepoClient",
    "RetryPolicy",
    "ReviewComment",
    "ScopedInstallationAuthStrategy",
    "WorkflowRun",
]


class RepoClient(
    ContentCalls, ConversationCalls, PullCalls, CheckCalls, ActionsCalls, DeploymentCalls
):
    """The calls Shipmate makes on one repository ("owner/name"), each through the retry policy.
    Every write (comment, reaction, label, PR, check run) is reported to `audit`. With
    `replies` (a delivery's job), each comment is posted once whatever the job's attempts
    (bot/github/replies.py)."""
