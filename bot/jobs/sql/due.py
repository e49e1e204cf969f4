"""Which job a claim takes: the first due one (by run_at, then id) whose lock_key no running job
holds. Each query is built once: building one costs more than running it, under the GIL the
event loop needs. They run inside the write transaction that the intake's commits wait for, so
none should scan the backlog.

First, `first_due`: the first WINDOW due waiting jobs alone, by index, and the first expired
lease. With jobs of many issues waiting, a free one is among the first. When those all belong
to running jobs' locks (a burst on one issue: every waiting job has the lock that the running
one holds), `first_free_waiting` walks the waiting jobs' distinct lock keys by index, skips the
held ones, and takes the earliest of the other keys' first jobs and the first job of no key:
an index lookup or two per distinct key, where the scan of the waiting jobs in order took
~15 ms at 30k waiting, several times a second. Past KEYS_WALKED distinct keys that walk could
cost more than the scan; `first_free_in_order` is the scan."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Float, and_, bindparam, func, or_, select, union_all

from bot.jobs.sql.schema import jobs

# How many of the first due waiting jobs `first_due` looks at.
WINDOW = 32
# At most this many distinct lock keys are walked; past them the waiting jobs are scanned.
KEYS_WALKED = 256


def _now() -> Any:
    return bindparam("now", type_=Float)


def _held() -> Any:
    """The lock keys that running jobs hold (their lease not run out) at `now`."""
    return (
        select(jobs.c.lock_key)
        .where(jobs.c.state == "running", jobs.c.lease_until > _now(), jobs.c.lock_key.is_not(None))
        .scalar_subquery()
    )


def _free(table: Any, of_kinds: bool) -> Any:
    free = or_(table.c.lock_key.is_(None), table.c.lock_key.not_in(_held()))
    if of_kinds:
        free = and_(free, table.c.kind.in_(bindparam("kinds", expanding=True)))
    return free


def _first(query: Any, table: Any) -> Any:
    return query.order_by(table.c.run_at, table.c.id).limit(1)


@functools.cache
def first_due(of_kinds: bool) -> Any:
    """The earlier of the first free job among the first WINDOW due waiting jobs and the first
    free expired lease (its worker died), at `now` (of `kinds`, with `of_kinds`). A waiting
    job it returns is the claim's; after an expired lease or None, a free waiting job may come
    later than the window (`first_free_waiting`)."""
    waiting = select(jobs).where(jobs.c.state == "waiting", jobs.c.run_at <= _now())
    if of_kinds:
        waiting = waiting.where(jobs.c.kind.in_(bindparam("kinds", expanding=True)))
    window = _first(waiting, jobs).limit(WINDOW).subquery()
    in_window = _first(select(window).where(_free(window, False)), window)
    expired = select(jobs).where(
        jobs.c.state == "running", jobs.c.lease_until <= _now(), _free(jobs, of_kinds)
    )
    candidates = union_all(
        in_window.subquery().select(), _first(expired, jobs).subquery().select()
    ).subquery()
    return _first(select(candidates), candidates)


def _waiting_keys() -> Any:
    """The distinct lock keys of waiting jobs, in order, each found by ix_jobs_state_lock_key
    from the one before (then a last NULL)."""
    later = jobs.alias("later")

    def after(*where: Any) -> Any:
        query = select(later.c.lock_key).where(later.c.state == "waiting", *where)
        return query.order_by(later.c.lock_key).limit(1).scalar_subquery()

    keys = select(after(later.c.lock_key.is_not(None)).label("lock_key")).cte(
        "waiting_keys", recursive=True
    )
    step = select(after(later.c.lock_key > keys.c.lock_key)).where(keys.c.lock_key.is_not(None))
    return keys.union_all(step)


@functools.cache
def keys_waiting() -> Any:
    """How many distinct lock keys waiting jobs have, counted up to KEYS_WALKED + 1."""
    keys = _waiting_keys()
    walked = select(keys.c.lock_key).where(keys.c.lock_key.is_not(None)).limit(KEYS_WALKED + 1)
    return select(func.count()).select_from(walked.subquery())


@functools.cache
def first_free_waiting(of_kinds: bool) -> Any:
    """The first due waiting job whose lock is free: the earliest of the first jobs of each
    waiting key that no running job holds, and of the first job of no key."""
    keys = _waiting_keys()
    head = jobs.alias("head")

    def first_of(key: Any) -> Any:
        query = select(head.c.id).where(head.c.state == "waiting", key)
        if of_kinds:
            query = query.where(head.c.kind.in_(bindparam("kinds", expanding=True)))
        return _first(query, head).scalar_subquery()

    keyed = select(first_of(head.c.lock_key == keys.c.lock_key).label("id")).where(
        keys.c.lock_key.is_not(None), keys.c.lock_key.not_in(_held())
    )
    heads = union_all(keyed, select(first_of(head.c.lock_key.is_(None)).label("id"))).subquery()
    first = select(jobs).where(jobs.c.id.in_(select(heads.c.id)), jobs.c.run_at <= _now())
    return _first(first, jobs)


@functools.cache
def first_free_in_order(of_kinds: bool) -> Any:
    """The first due waiting job whose lock is free, by a scan of the waiting jobs in order."""
    waiting = select(jobs).where(
        jobs.c.state == "waiting", jobs.c.run_at <= _now(), _free(jobs, of_kinds)
    )
    return _first(waiting, jobs)
