"""Every table of Shipmate's own, in one place. SQLAlchemy Core; SQLite or PostgreSQL.

Times are UNIX seconds (float) so both databases store and compare them the same way.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

deliveries = Table(
    "deliveries",
    metadata,
    Column("delivery_id", String(100), primary_key=True),
    Column("event", String(100), nullable=False),
    Column("action", String(100)),
    Column("installation_id", BigInteger),
    Column("repository", String(300)),
    Column("payload", LargeBinary, nullable=False),
    # queued -> handled | failed; or ignored (no handler) from the start.
    Column("status", String(20), nullable=False),
    Column("error", Text),
    Column("received_at", Float, nullable=False),
)

# One row per accepted body, keyed by its verified signature (the HMAC of the body): GitHub's
# signature covers neither X-GitHub-Delivery nor X-GitHub-Event, so a body seen before under
# another delivery id is a replay, answered as a duplicate.
delivery_digests = Table(
    "delivery_digests",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("delivery_id", String(100), nullable=False),
)

# The queue's tables are the queue's own (bot/jobs/): the SQL queue's `jobs`, or
# procrastinate's schema on PostgreSQL.

# Who is taking jobs: each worker process writes its row every heartbeat (capacity, jobs
# running, "running" or "draining"), for the dashboard's queue page; a stale heartbeat is a
# worker that was killed or lost its host.
workers = Table(
    "workers",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("backend", String(20), nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("running", Integer, nullable=False),
    Column("state", String(20), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)

installations = Table(
    "installations",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("account", String(200), nullable=False),
    Column("suspended", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

installation_repositories = Table(
    "installation_repositories",
    metadata,
    Column("installation_id", BigInteger, primary_key=True, autoincrement=False),
    Column("full_name", String(300), primary_key=True),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("repo", String(300)),
    Column("number", Integer),
    Column("kind", String(30), nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", Text),
    Column("branch", String(300)),
    Column("base_sha", String(64)),
    Column("head_sha", String(64)),
    Column("plan", Text),
    Column("steps", Integer, nullable=False, default=0),
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    Column("cache_creation_input_tokens", BigInteger, nullable=False, default=0),
    Column("cache_read_input_tokens", BigInteger, nullable=False, default=0),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("sandbox_wall_seconds", Float, nullable=False, default=0.0),
    Column("sandbox_cpu_seconds", Float, nullable=False, default=0.0),
    Column("ci_minutes", Float, nullable=False, default=0.0),
    Column("review_seconds", Float, nullable=False, default=0.0),
    Column("transcript_path", Text),
    Column("delivery_id", String(100)),
    Column("comment_id", BigInteger),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),
    Index("ix_runs_repo_number", "repo", "number"),
)

model_calls = Table(
    "model_calls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(40), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("model", String(100), nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_creation_input_tokens", BigInteger, nullable=False),
    Column("cache_read_input_tokens", BigInteger, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_model_calls_run", "run_id"),
)

# The audit trail: every action taken on GitHub and every egress request of a sandbox
# (action `egress.allowed` / `egress.denied`, target `host:port`), one stream per run.
# Append-only: the database refuses UPDATE and DELETE (triggers made by `Store.migrate`).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("run_id", String(100)),
    Column("delivery_id", String(100)),
    Column("actor", String(200)),
    Column("action", String(100), nullable=False),
    Column("target", String(500)),
    Column("detail", JSON),
    Index("ix_audit_run", "run_id"),
    Index("ix_audit_delivery", "delivery_id"),
)

repair_attempts = Table(
    "repair_attempts",
    metadata,
    Column("repo", String(300), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("fingerprint", String(64), primary_key=True),
    Column("count", Integer, nullable=False, default=0),
)

# One polite refusal per thread and user: remembered here so it is never repeated.
refusals = Table(
    "refusals",
    metadata,
    Column("repo", String(300), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("login", String(200), primary_key=True),
    Column("at", Float, nullable=False),
)

# The ledger of a change beyond its runs: the CI jobs that ran on a Shipmate branch (from
# workflow_job, and check_run / check_suite of other CI apps), keyed by their GitHub id so a
# redelivery counts once, and what people did on Shipmate's pull requests.
ci_jobs = Table(
    "ci_jobs",
    metadata,
    Column("key", String(120), primary_key=True),  # "<source>:<GitHub id>"
    Column("repo", String(300), nullable=False),
    Column("head_branch", String(300)),
    Column("head_sha", String(64)),
    Column("name", String(300)),
    Column("app", String(100)),
    Column("conclusion", String(30)),
    Column("started_at", Float),
    Column("completed_at", Float),
    Column("seconds", Float, nullable=False, default=0.0),
    Index("ix_ci_jobs_repo_branch", "repo", "head_branch"),
)

pr_activity = Table(
    "pr_activity",
    metadata,
    Column("key", String(200), primary_key=True),  # one row per GitHub event, redeliveries once
    Column("repo", String(300), nullable=False),
    Column("number", Integer, nullable=False),
    Column("kind", String(20), nullable=False),  # opened | review | comment | merged | closed
    Column("actor", String(200)),
    Column("branch", String(300)),
    Column("at", Float, nullable=False),
    Index("ix_pr_activity_repo_number", "repo", "number"),
)

# The last check of each repository's `.github/shipmate.yml` (the dashboard's repositories page).
config_checks = Table(
    "config_checks",
    metadata,
    Column("repo", String(300), primary_key=True),
    Column("error", Text),  # None: valid
    Column("at", Float, nullable=False),
)

# A change held back for its size (bot/runs/held.py), kept so that `/shipmate apply --large`
# publishes exactly it: the patch (zlib, `git diff --binary --full-index`) against `base_sha`,
# the tree it must rebuild, and what the run said of it. `published_at` once it is pushed.
held_changes = Table(
    "held_changes",
    metadata,
    Column("run_id", String(40), primary_key=True),
    Column("repo", String(300), nullable=False),
    Column("number", Integer, nullable=False),
    Column("base_sha", String(64), nullable=False),
    Column("tree", String(64), nullable=False),
    Column("patch", LargeBinary, nullable=False),
    Column("detail", JSON),
    Column("created_at", Float, nullable=False),
    Column("published_at", Float),
    Column("published_by", String(200)),
    Index("ix_held_changes_repo_number", "repo", "number"),
)
