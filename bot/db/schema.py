"""Every table of Shipmate's own, in one place. SQLAlchemy Core; SQLite or PostgreSQL. Each is
declared as data, a column a line (bot/db/columns.py).

Times are UNIX seconds (float) so both databases store and compare them the same way.
"""

from __future__ import annotations

from sqlalchemy import Index, MetaData

from bot.db.columns import table

metadata = MetaData()

# A delivery's status: queued -> handled | failed; or ignored (no handler) from the start.
deliveries = table(
    "deliveries",
    metadata,
    """
    delivery_id      String(100)  primary key
    event            String(100)  not null
    action           String(100)
    installation_id  BigInteger
    repository       String(300)
    payload          LargeBinary  not null
    status           String(20)   not null
    error            Text
    received_at      Float        not null
    """,
)

# One row per accepted body, keyed by its verified signature (the HMAC of the body): GitHub's
# signature covers neither X-GitHub-Delivery nor X-GitHub-Event, so a body seen before under
# another delivery id is a replay, answered as a duplicate.
delivery_digests = table(
    "delivery_digests",
    metadata,
    """
    digest       String(64)   primary key
    delivery_id  String(100)  not null
    """,
)

# The queue's tables are the queue's own (bot/jobs/): the SQL queue's `jobs`, or
# procrastinate's schema on PostgreSQL.

# Who is taking jobs: each worker process writes its row every heartbeat (capacity, jobs
# running, "running" or "draining"), for the dashboard's queue page; a stale heartbeat is a
# worker that was killed or lost its host.
workers = table(
    "workers",
    metadata,
    """
    id            String(200)  primary key
    host          String(200)  not null
    pid           Integer      not null
    backend       String(20)   not null
    capacity      Integer      not null
    running       Integer      not null
    state         String(20)   not null
    started_at    Float        not null
    heartbeat_at  Float        not null
    """,
)

installations = table(
    "installations",
    metadata,
    """
    id          BigInteger   primary key
    account     String(200)  not null
    suspended   Boolean      not null  default false
    created_at  Float        not null
    updated_at  Float        not null
    """,
)

installation_repositories = table(
    "installation_repositories",
    metadata,
    """
    installation_id  BigInteger   primary key
    full_name        String(300)  primary key
    """,
)

runs = table(
    "runs",
    metadata,
    """
    id                           String(40)   primary key
    repo                         String(300)
    number                       Integer
    kind                         String(30)   not null
    status                       String(20)   not null
    reason                       Text
    branch                       String(300)
    base_sha                     String(64)
    head_sha                     String(64)
    plan                         Text
    steps                        Integer      not null  default 0
    input_tokens                 BigInteger   not null  default 0
    output_tokens                BigInteger   not null  default 0
    cache_creation_input_tokens  BigInteger   not null  default 0
    cache_read_input_tokens      BigInteger   not null  default 0
    cost_usd                     Float        not null  default 0.0
    sandbox_wall_seconds         Float        not null  default 0.0
    sandbox_cpu_seconds          Float        not null  default 0.0
    ci_minutes                   Float        not null  default 0.0
    review_seconds               Float        not null  default 0.0
    transcript_path              Text
    delivery_id                  String(100)
    comment_id                   BigInteger
    created_at                   Float        not null
    finished_at                  Float
    """,
    Index("ix_runs_repo_number", "repo", "number"),
)

model_calls = table(
    "model_calls",
    metadata,
    """
    id                           Integer      primary key autoincrement
    run_id                       String(40)   not null
    seq                          Integer      not null
    model                        String(100)  not null
    input_tokens                 BigInteger   not null
    output_tokens                BigInteger   not null
    cache_creation_input_tokens  BigInteger   not null
    cache_read_input_tokens      BigInteger   not null
    cost_usd                     Float        not null
    duration_ms                  Float        not null
    created_at                   Float        not null
    """,
    Index("ix_model_calls_run", "run_id"),
)

# The audit trail: every action taken on GitHub and every egress request of a sandbox
# (action `egress.allowed` / `egress.denied`, target `host:port`), one stream per run.
# Append-only: the database refuses UPDATE and DELETE (triggers made by `Store.migrate`).
audit_log = table(
    "audit_log",
    metadata,
    """
    id           Integer      primary key autoincrement
    at           Float        not null
    run_id       String(100)
    delivery_id  String(100)
    actor        String(200)
    action       String(100)  not null
    target       String(500)
    detail       JSON
    """,
    Index("ix_audit_run", "run_id"),
    Index("ix_audit_delivery", "delivery_id"),
)

repair_attempts = table(
    "repair_attempts",
    metadata,
    """
    repo         String(300)  primary key
    number       Integer      primary key
    fingerprint  String(64)   primary key
    count        Integer      not null  default 0
    """,
)

# One polite refusal per thread and user: remembered here so it is never repeated.
refusals = table(
    "refusals",
    metadata,
    """
    repo    String(300)  primary key
    number  Integer      primary key
    login   String(200)  primary key
    at      Float        not null
    """,
)

# The ledger of a change beyond its runs: the CI jobs that ran on a Shipmate branch (from
# workflow_job, and check_run / check_suite of other CI apps), keyed by their GitHub id so a
# redelivery counts once, and what people did on Shipmate's pull requests.
ci_jobs = table(
    "ci_jobs",
    metadata,
    """
    key           String(120)  primary key  -- "<source>:<GitHub id>"
    repo          String(300)  not null
    head_branch   String(300)
    head_sha      String(64)
    name          String(300)
    app           String(100)
    conclusion    String(30)
    started_at    Float
    completed_at  Float
    seconds       Float        not null  default 0.0
    """,
    Index("ix_ci_jobs_repo_branch", "repo", "head_branch"),
)

pr_activity = table(
    "pr_activity",
    metadata,
    """
    key     String(200)  primary key  -- one row per GitHub event, redeliveries once
    repo    String(300)  not null
    number  Integer      not null
    kind    String(20)   not null  -- opened | review | comment | merged | closed
    actor   String(200)
    branch  String(300)
    at      Float        not null
    """,
    Index("ix_pr_activity_repo_number", "repo", "number"),
)

# The last check of each repository's `.github/shipmate.yml` (the dashboard's repositories page).
config_checks = table(
    "config_checks",
    metadata,
    """
    repo   String(300)  primary key
    error  Text         -- None: valid
    at     Float        not null
    """,
)

# A change held back for its size (bot/runs/held.py), kept so that `/shipmate apply --large`
# publishes exactly it: the patch (zlib, `git diff --binary --full-index`) against `base_sha`,
# the tree it must rebuild, and what the run said of it. `published_at` once it is pushed.
held_changes = table(
    "held_changes",
    metadata,
    """
    run_id        String(40)   primary key
    repo          String(300)  not null
    number        Integer      not null
    base_sha      String(64)   not null
    tree          String(64)   not null
    patch         LargeBinary  not null
    detail        JSON
    created_at    Float        not null
    published_at  Float
    published_by  String(200)
    """,
    Index("ix_held_changes_repo_number", "repo", "number"),
)
