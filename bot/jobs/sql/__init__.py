"""The SQL queue: `Queue` on the store's database (SQLite by default; PostgreSQL too, where it
is the baseline procrastinate is measured against). It owns its table, `jobs` (schema.py).

Jobs are claimed with a lease (leases.py); a worker that dies lets its lease run out and the
job is claimed again. The intake writes webhook jobs with their deliveries (enqueue.py); the
dashboard and retention see the rest (admin.py). PostgreSQL gets procrastinate instead
(bot/jobs/procrastinate_queue.py) unless SHIPMATE_QUEUE_BACKEND=sql.
"""

from bot.jobs.sql.backend import SQLQueue
from bot.jobs.sql.schema import SCHEMA_VERSION, jobs, metadata

__all__ = ["SCHEMA_VERSION", "SQLQueue", "jobs", "metadata"]
