"""`/shipmate apply --large`: the change a run held back for its size (bot/runs/held.py),
published as it was reviewed, without the agent; the held run's own record is the one
completed."""

from __future__ import annotations

import asyncio

from bot.config import RepoConfigError
from bot.db.store import Store
from bot.runs.change import ReviewError
from bot.runs.context import READ_ONLY, Run, lock_key
from bot.runs.finish import finish
from bot.runs.held import held_execution, held_for
from bot.runs.start import check_out, read_target


async def publish_held(run: Run, held_id: str) -> None:
    """Publish the change run `held_id` held back on this issue or pull request, rebuilt on its
    base commit and reviewed once more against the repository's config of now."""
    store = run.deps.store
    if run.retried and await asyncio.to_thread(published_by, store, held_id, run.job_key):
        # An earlier attempt published it and was killed before the job was marked done: the
        # sticky comment already says so, and the change is not "published already" to its job.
        await asyncio.to_thread(store.held.mark_published, held_id, run.request.actor)
        return
    held = await asyncio.to_thread(held_for, store, held_id, run.repo_name, run.number)
    held_run = await asyncio.to_thread(store.get_run, held_id)
    if isinstance(held, str) or held_run is None:
        await run.fail(str(held))
        return
    reader = await run.client(READ_ONLY)
    try:
        target = await read_target(run, reader)
        checkout = await check_out(run, target.clone_url, held.base_sha)
        try:
            done = await asyncio.to_thread(held_execution, held, held_run, checkout, target.config)
        finally:
            run.deps.cache.release(checkout)
    except (RepoConfigError, ReviewError) as exc:
        await run.fail(f"The held change cannot be published: {exc}")
        return
    # The held run's record is the one completed; the branch is named by this job's key.
    run.run_id = held_id
    try:
        issue = await reader.issue(run.number)
        final = await finish(run, done, held.base_sha, target.default_branch, issue)
    finally:
        done.discard()
    if final.stage == "done":
        # The audit first, naming the job: a retry after a kill between the two finishes this.
        where = lock_key(run.repo_name, run.number)
        await run.audit("change.published", where, large=True, job=run.job_key)
        await asyncio.to_thread(store.held.mark_published, held_id, run.request.actor)


def published_by(store: Store, held_id: str, key: str) -> bool:
    """Whether the job `key` published the change `held_id` (its audit says so)."""
    return any(
        row["action"] == "change.published" and (row.get("detail") or {}).get("job") == key
        for row in store.audit_for_run(held_id)
    )
