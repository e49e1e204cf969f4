"""A run started from GitHub, from checkout to pull request: the `run` job.

Each step gets the least token it needs: a read-only one for the checkout and for reading, one
that may write issues and pull requests for the conversation (the sticky comment, review
replies), and one that may write contents only at push time, never for a plan. The agent sees
none of them. One sticky comment per task is edited as the task goes (queued -> planning ->
running with the plan -> running tests -> done/failed), and a `Shipmate` check run on the new
head carries the same summary. Every text posted passes outbound redaction with the secrets this
run knows. Shipmate opens pull requests; it never merges, never force-pushes and never pushes to
the default branch.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import structlog

from bot.agent.budget import Budget
from bot.agent.model import AnthropicModel, Model, Reply
from bot.agent.prompts import Brief
from bot.agent.transcript import Transcript
from bot.config import (
    ConfigError,
    RepoConfig,
    RepoConfigError,
    Settings,
    parse_repo_config,
    slugify,
)
from bot.db.store import Store
from bot.github.client import GitHubApp, RepoClient
from bot.github.git_data import GitDatabase
from bot.jobs.queue import Job
from bot.jobs.worker import JobContext, JobRejected
from bot.runs.api_commit import BranchMoved, NotPublished, commit_through_api
from bot.runs.artifacts import save_artifacts
from bot.runs.briefs import context_blocks, task_text
from bot.runs.budgets import monthly_caps, over_budget
from bot.runs.change import ReviewError
from bot.runs.costs import ledger_lines
from bot.runs.execute import Execution, execute
from bot.runs.held import held_execution, held_for, hold, large_note
from bot.runs.publish import commit_message
from bot.runs.render import Progress, check_output, pr_body, sticky_comment
from bot.runs.report import change_so_far, rates_of
from bot.runs.request import BadRunRequest, PullTarget, RunRequest
from bot.sandbox import operator_secrets
from bot.sandbox.checkout import CheckoutCache
from bot.sandbox.environment import Environments
from bot.security.redact import outbound

log = structlog.get_logger("shipmate.runs")

READ_ONLY: Mapping[str, str] = {
    "metadata": "read",
    "contents": "read",
    "issues": "read",
    "pull_requests": "read",
}
CONVERSE: Mapping[str, str] = {"metadata": "read", "issues": "write", "pull_requests": "write"}
PUBLISH: Mapping[str, str] = {
    "metadata": "read",
    "contents": "write",
    "pull_requests": "write",
    "checks": "write",
}
CHECKS: Mapping[str, str] = {"metadata": "read", "checks": "write"}
LINK_HOSTS = ("github.com",)
# The `Shipmate` check run's buttons; GitHub sends check_run.requested_action (handlers/).
STOP_ACTION = {
    "label": "Stop",
    "description": "Stop this task; nothing is pushed",
    "identifier": "stop",
}
RETRY_ACTION = {"label": "Retry", "description": "Run this task again", "identifier": "retry"}


def lock_key(repo: str, number: int) -> str:
    return f"{repo}#{number}"


def sticky_key(repo: str, number: int) -> str:
    """The key in the marker of the task's sticky comment: `owner-name-number`."""
    return f"{repo.replace('/', '-')}-{number}"


def run_secrets(
    settings: Settings, config: RepoConfig, repo_name: str, installation_id: int, fork: bool
) -> operator_secrets.Granted:
    """The secrets the repository requests, as the operator's declarations grant them; a fork's
    code never runs with secrets, so its requests are not even looked up."""
    if fork or not config.secrets:
        return operator_secrets.Granted()
    try:
        declared = operator_secrets.load(settings)
    except ConfigError as exc:
        log.error("secrets.unreadable", error=str(exc))
        return operator_secrets.Granted(
            refused=("the operator's declarations cannot be read (Shipmate's log says why)",)
        )
    return operator_secrets.grant(
        declared,
        config.secrets,
        repository=repo_name,
        installation=installation_id,
        environ=os.environ,
    )


@dataclass
class RunDeps:
    settings: Settings
    store: Store
    app: GitHubApp
    cache: CheckoutCache
    model_factory: Any = None  # () -> Model; the Anthropic model by default

    def model(self) -> Model:
        if self.model_factory is not None:
            return self.model_factory()  # type: ignore[no-any-return]
        return AnthropicModel.from_settings(self.settings)


@dataclass
class Outbound:
    """Everything a run posts: redacted of the secrets it knows, links only to GitHub."""

    known: list[str] = field(default_factory=list)
    link_hosts: tuple[str, ...] = LINK_HOSTS

    def add(self, *values: str | None) -> None:
        self.known.extend(v for v in values if v)

    def __call__(self, text: str) -> str:
        return outbound(text, known=self.known, allowed_hosts=self.link_hosts)


class Sticky:
    """The task's one comment, edited in place; every text passes outbound redaction."""

    def __init__(
        self, repo: RepoClient, number: int, comment_id: int | None, clean: Outbound
    ) -> None:
        self.repo, self.number, self.comment_id, self.clean = repo, number, comment_id, clean

    async def show(self, progress: Progress) -> None:
        body = self.clean(sticky_comment(progress))
        if self.comment_id is None:
            self.comment_id = await self.repo.comment(self.number, body)
        else:
            await self.repo.edit_comment(self.comment_id, body)


class PlanWatch:
    """The model, unchanged, except that its first answer (the plan) is shown when it arrives."""

    def __init__(self, inner: Model, on_plan: Callable[[str], Awaitable[None]]) -> None:
        self.inner, self.on_plan, self.name = inner, on_plan, inner.name
        self.seen = False

    async def reply(
        self,
        *,
        system: list[dict[str, Any]],
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        max_tokens: int,
    ) -> Reply:
        reply = await self.inner.reply(
            system=system, messages=messages, tools=tools, max_tokens=max_tokens
        )
        if not self.seen:
            self.seen = True
            await self.on_plan(reply.text)
        return reply

    async def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            await close()


@dataclass
class Run:
    """One run's identity and the clients it posts with."""

    deps: RunDeps
    run_id: str
    repo_name: str
    number: int
    verb: str
    installation_id: int
    request: RunRequest
    clean: Outbound
    talker: RepoClient
    sticky: Sticky
    # The in-progress `Shipmate` check run (with its Stop button) of a run on a pull request.
    live_check: int | None = None
    # What makes its new branch's name its own: the run's id, or for `apply --large` (which
    # completes the held run's record) this attempt's own, so that a retry after a push that
    # got no further never meets the branch it already made.
    branch_tag: str | None = None

    @property
    def key(self) -> str:
        return sticky_key(self.repo_name, self.number)

    @property
    def url(self) -> str | None:
        """The run's dashboard page, when Shipmate knows its public address."""
        public = self.deps.settings.public_url
        return f"{public.rstrip('/')}/dashboard/runs/{self.run_id}" if public else None

    def progress(self, stage: str, **extra: Any) -> Progress:
        extra.setdefault("run_url", self.url)
        return Progress(key=self.key, verb=self.verb, stage=stage, **extra)  # type: ignore[arg-type]

    async def token(self, permissions: Mapping[str, str]) -> str:
        return await mint(self.deps, self.installation_id, self.repo_name, self.clean, permissions)

    async def client(self, permissions: Mapping[str, str]) -> RepoClient:
        return await client_for(
            self.deps, self.installation_id, self.repo_name, self.clean, permissions
        )

    async def audit(self, action: str, target: str, **detail: Any) -> None:
        await asyncio.to_thread(
            self.deps.store.append_audit,
            action,
            run_id=self.run_id,
            actor="shipmate",
            target=target,
            detail=detail or None,
        )


async def mint(
    deps: RunDeps,
    installation_id: int,
    repo_name: str,
    clean: Outbound,
    permissions: Mapping[str, str],
) -> str:
    """A token for this repository only, known to outbound redaction from now on."""
    minted = await deps.app.installation_token(
        installation_id, repositories=[repo_name], permissions=permissions
    )
    clean.add(minted.token)
    return minted.token


async def client_for(
    deps: RunDeps,
    installation_id: int,
    repo_name: str,
    clean: Outbound,
    permissions: Mapping[str, str],
) -> RepoClient:
    await mint(deps, installation_id, repo_name, clean, permissions)
    github = await deps.app.installation_client(
        installation_id, repository=repo_name, permissions=permissions
    )
    return RepoClient(github, repo_name)


def refused_egress(store: Store, run_id: str) -> tuple[tuple[str, str, str | None], ...]:
    """The distinct (host, method, command) the egress proxy refused during a run."""
    seen: dict[tuple[str, str, str | None], None] = {}
    for row in store.egress_for_task(run_id):
        if not row["allowed"]:
            seen[(str(row["host"]), str(row.get("method") or ""), row.get("command"))] = None
    return tuple(seen)[:20]


def link_hosts(settings: Settings) -> tuple[str, ...]:
    """GitHub, and Shipmate's own public address for links to a run's page."""
    public = urlsplit(settings.public_url or "").hostname
    return (*LINK_HOSTS, public) if public else LINK_HOSTS


async def run_job(job: Job, context: JobContext, deps: RunDeps) -> None:
    try:
        request = RunRequest.from_payload(job.payload)
    except BadRunRequest as exc:
        # Retrying cannot mend it: the job fails now, saying why (see JobRejected).
        raise JobRejected(f"not a run request: {exc}") from None
    repo_name, number = request.repo, request.number
    installation_id = request.installation_id
    clean = Outbound(list(deps.settings.known_secrets()), link_hosts(deps.settings))
    talker = await client_for(deps, installation_id, repo_name, clean, CONVERSE)
    sticky = Sticky(talker, number, request.sticky_comment_id, clean)
    run = Run(
        deps,
        uuid.uuid4().hex[:12],
        repo_name,
        number,
        request.verb,
        installation_id,
        request,
        clean,
        talker,
        sticky,
    )
    if request.task.publish is not None:
        await publish_held(run, request.task.publish)
        return
    await start(run, await run.client(READ_ONLY), context)


async def publish_held(run: Run, held_id: str) -> None:
    """`/shipmate apply --large`: the change run `held_id` held back for its size, published as
    it was reviewed (bot/runs/held.py); the held run's own record is the one completed."""
    store = run.deps.store
    held = await asyncio.to_thread(held_for, store, held_id, run.repo_name, run.number)
    held_run = await asyncio.to_thread(store.get_run, held_id)
    if isinstance(held, str) or held_run is None:
        await run.sticky.show(run.progress("failed", reason=str(held)))
        return
    reader = await run.client(READ_ONLY)
    repository = await reader.repository()
    default_branch = str(repository["default_branch"])
    try:
        config = parse_repo_config(await reader.file_text(".github/shipmate.yml", default_branch))
        read_token = await run.token(READ_ONLY)
        checkout = await asyncio.to_thread(
            run.deps.cache.tree, clone_url_of(run, repository), held.base_sha, read_token
        )
        try:
            done = await asyncio.to_thread(held_execution, held, held_run, checkout, config)
        finally:
            run.deps.cache.release(checkout)
    except (RepoConfigError, ReviewError) as exc:
        reason = f"The held change cannot be published: {exc}"
        await run.sticky.show(run.progress("failed", reason=reason))
        return
    run.branch_tag, run.run_id = run.run_id[:6], held_id
    try:
        final = await finish(
            run, done, held.base_sha, default_branch, await reader.issue(run.number)
        )
    finally:
        done.discard()
    if final.stage == "done":
        await asyncio.to_thread(store.held.mark_published, held_id, run.request.actor)
        await run.audit("change.published", lock_key(run.repo_name, run.number), large=True)


def clone_url_of(run: Run, repository: Mapping[str, Any]) -> str:
    fallback = f"{run.deps.settings.github_api_url}/{run.repo_name}.git"
    return str(repository.get("clone_url") or fallback)


async def start(run: Run, reader: RepoClient, context: JobContext) -> None:
    deps, task, number, sticky = run.deps, run.request.task, run.number, run.sticky
    store = deps.store
    repository = await reader.repository()
    default_branch = str(repository["default_branch"])
    try:
        config = parse_repo_config(await reader.file_text(".github/shipmate.yml", default_branch))
    except RepoConfigError as exc:
        await sticky.show(run.progress("failed", reason=f"Shipmate cannot start: {exc}"))
        return
    granted = run_secrets(deps.settings, config, run.repo_name, run.installation_id, task.fork)
    if granted.refused:
        reason = f"Shipmate cannot start: {granted.reason}"
        await sticky.show(run.progress("failed", reason=reason))
        return
    run.clean.add(*granted.values)
    issue = await reader.issue(number)
    if task.pr is not None:
        base_sha: str | None = task.pr.head_sha
    elif task.base_sha:
        base_sha = task.base_sha  # a deploy follow-up starts from what was deployed
    else:
        base_sha = await reader.branch_sha(default_branch)
    if base_sha is None:
        await sticky.show(
            run.progress("failed", reason=f"The default branch {default_branch} has no commits.")
        )
        return
    await asyncio.to_thread(
        store.record_run,
        run.run_id,
        repo=run.repo_name,
        number=number,
        kind=run.verb,
        base_sha=base_sha,
        delivery_id=run.request.delivery_id,
        comment_id=sticky.comment_id,
    )
    await asyncio.to_thread(
        store.append_audit,
        "run.start",
        run_id=run.run_id,
        delivery_id=run.request.delivery_id,
        actor=run.request.actor,
        target=lock_key(run.repo_name, number),
        detail={"verb": run.verb, "task": task.fields()},
    )
    await sticky.show(run.progress("planning"))
    if task.pr is not None:
        await start_check(run, base_sha)

    read_token = await run.token(READ_ONLY)
    checkout = await asyncio.to_thread(
        deps.cache.tree, clone_url_of(run, repository), base_sha, read_token
    )
    brief = Brief(
        task=task_text(task, number, issue),
        context=context_blocks(task, issue),
        instructions=config.instructions,
        test_command=config.test,
        plan_only=run.verb == "plan",
    )
    budget = Budget(
        config.max_steps or deps.settings.max_steps,
        config.max_cost_usd or deps.settings.max_cost_usd,
        config.timeout_seconds or deps.settings.run_timeout_seconds,
        cancelled=context.should_abort,
        over_budget=lambda: over_budget(
            store, monthly_caps(deps.settings, config), run.repo_name, run.installation_id
        ),
    )
    shown_plan = ""

    async def on_plan(plan: str) -> None:
        nonlocal shown_plan
        shown_plan = plan
        if run.verb != "plan":
            await sticky.show(run.progress("running", plan=plan))

    async def on_tests() -> None:
        await sticky.show(run.progress("testing", plan=shown_plan))

    model = PlanWatch(deps.model(), on_plan)
    transcript = deps.settings.data_dir / "runs" / f"{run.run_id}.jsonl"
    try:
        done = await execute(
            checkout=checkout,
            base_sha=base_sha,
            brief=brief,
            config=config,
            model=model,
            budget=budget,
            transcript=Transcript(transcript, tuple(run.clean.known)),
            store=store,
            run_id=run.run_id,
            ca_dir=deps.cache.root / "ca",
            environments=Environments.from_settings(deps.settings),
            secrets=granted.secrets,
            allow_networks=deps.settings.egress_allow_networks,
            on_tests=on_tests,
        )
    finally:
        deps.cache.release(checkout)
        await model.close()
    await asyncio.to_thread(
        save_artifacts,
        store,
        run.run_id,
        transcript,
        status=done.status,
        diff=done.patch,
        test_output=done.test_output,
        clean=run.clean,
    )
    try:
        await finish(run, done, base_sha, default_branch, issue)
    finally:
        done.discard()


async def finish(
    run: Run, done: Execution, base_sha: str, default_branch: str, issue: dict[str, Any]
) -> Progress:
    task, verb = run.request.task, run.verb
    common: dict[str, Any] = {
        "key": run.key,
        "verb": verb,
        "plan": done.plan,
        "usage": done.usage,
        "cost_usd": done.cost_usd,
        "steps": done.steps,
        "sandbox_seconds": done.sandbox_wall_seconds,
        "run_url": run.url,
        "refused": await asyncio.to_thread(refused_egress, run.deps.store, run.run_id),
    }
    if task.publish is not None and done.over_scope:
        common["notes"] = (large_note(done.over_scope, run.request.actor),)
    branch = None
    if done.status == "completed" and verb == "plan":
        final = Progress(stage="done", **common)
    elif done.status == "blocked":
        final = Progress(
            stage="blocked",
            reason=f"The change was held back: {done.reason}. Nothing was pushed.",
            diff="",
            **common,
        )
    elif done.status != "completed":
        final = Progress(
            stage="stopped" if "cancelled" in done.reason else "failed",
            reason=f"The run ended: {done.reason}",
            **common,
        )
    elif done.change is None:
        final = no_change(done, common)
    elif done.over_scope and task.publish is None:
        where = (run.repo_name, run.number)
        final = await hold(run.deps.store, run.run_id, where, done, common, run.clean)
        await run.audit("change.held", lock_key(*where), reason=done.over_scope)
    else:
        final, branch = await publish_change(run, done, base_sha, default_branch, issue, common)
    await run.sticky.show(final)
    await end_check(run, final)
    await run.audit("comment.edit", f"{run.repo_name}#{run.number}")
    await asyncio.to_thread(
        run.deps.store.update_run,
        run.run_id,
        status=final.stage if final.stage in ("stopped", "held") else done.status,
        reason=done.reason,
        branch=branch,
        plan=done.plan,
        steps=done.steps,
        cost_usd=done.cost_usd,
        finished_at=time.time(),
        sandbox_wall_seconds=done.sandbox_wall_seconds,
        sandbox_cpu_seconds=done.sandbox_cpu_seconds,
        **done.usage.as_dict(),
    )
    log.info("run.finished", run_id=run.run_id, status=done.status, pr=final.pr_url)
    return final


def no_change(done: Execution, common: dict[str, Any]) -> Progress:
    """A run that changed nothing: "no change was needed" only when the tests, which Shipmate
    ran itself, pass."""
    if done.tests_passed:
        reason = "No change was needed: the tests pass."
    elif done.tests_passed is False:
        reason = "I made no change, and the tests fail."
    else:
        reason = (
            "I made no change. The repository names no test command (`test:` in "
            "`.github/shipmate.yml`), so nothing showed whether one was needed."
        )
    return Progress(
        stage="no_change",
        reason=reason,
        tests_passed=done.tests_passed,
        test_summary=done.test_output[-1500:],
        **common,
    )


async def publish_change(
    run: Run,
    done: Execution,
    base_sha: str,
    default_branch: str,
    issue: dict[str, Any],
    common: dict[str, Any],
) -> tuple[Progress, str | None]:
    """A follow-up commit on the PR's branch, or a new branch and pull request; when GitHub
    would not take the commit as reviewed, or the branch moved, nothing is pushed and the
    sticky comment says so."""
    task = run.request.task
    try:
        if task.pr is not None:
            return await push_follow_up(run, task.pr, done, base_sha, common), task.pr.head_ref
        return await open_pull(run, done, base_sha, default_branch, issue, common)
    except NotPublished as exc:
        log.warning("run.not_published", run_id=run.run_id, reason=str(exc))
        if isinstance(exc, BranchMoved) and task.pr is not None:
            return moved(task.pr.head_ref, common), None
        reason = f"The commit was not made: {exc}. Nothing was pushed."
        return Progress(stage="failed", reason=reason, **common), None


def moved(head_ref: str, common: dict[str, Any]) -> Progress:
    return Progress(
        stage="stopped",
        reason=f"`{head_ref}` moved while I worked (someone pushed), so I pushed nothing. "
        "Comment `/shipmate retry` to start again from the new head.",
        **common,
    )


async def push(
    run: Run, done: Execution, base_sha: str, branch: str, title: str, *, new_branch: bool
) -> str:
    """The reviewed tree becomes a commit GitHub makes (and signs) through its Git database
    API, with a client minted for this moment only; `branch` moves to it only from
    `base_sha` (a fast-forward), or is created."""
    if done.change is None or done.change.base_sha != base_sha:
        raise RuntimeError("a completed run with a patch always holds its reviewed change")
    publisher = await run.client(PUBLISH)
    commit = await commit_through_api(
        GitDatabase(publisher),
        done.change,
        run.clean(commit_message(title, done.summary)),
        branch=branch,
        new_branch=new_branch,
    )
    await run.audit("git.push", branch, sha=commit.sha, verified=commit.verified, via="api")
    return commit.sha


def shown_result(done: Execution, common: dict[str, Any], **extra: Any) -> Progress:
    return Progress(
        stage="done",
        diff=done.patch,
        tests_passed=done.tests_passed,
        test_summary=done.test_output[-1500:],
        **common,
        **extra,
    )


async def open_pull(
    run: Run,
    done: Execution,
    base_sha: str,
    default_branch: str,
    issue: dict[str, Any],
    common: dict[str, Any],
) -> tuple[Progress, str]:
    number = run.number
    issue_title = str(issue.get("title") or f"issue {number}")
    title = (run.request.task.title or f"Fix #{number}: {issue_title}")[:250]
    branch = f"shipmate/{number}-{slugify(run.request.task.title or issue_title, 30)}"
    branch += f"-{run.branch_tag or run.run_id[:6]}"
    head_sha = await push(run, done, base_sha, branch, title, new_branch=True)
    shown = shown_result(done, common)
    # A follow-up of a pull request refers to it; an issue is closed by the pull request.
    follow_up = bool(run.request.task.title)
    body = pr_body(
        shown,
        issue_number=None if follow_up else number,
        lead=f"Follow-up to #{number}." if follow_up else None,
    )
    publisher = await run.client(PUBLISH)
    pull = await publisher.create_pull(
        head=branch,
        base=default_branch,
        title=run.clean(title),
        body=run.clean(body),
        draft=done.tests_passed is False,
    )
    await run.audit("pull_request.create", f"{run.repo_name}#{pull.number}")
    ledger = await asyncio.to_thread(ledger_text, run, done, pull.number, branch)
    await report_check(run, publisher, shown, head_sha, ledger)
    return shown_result(done, common, pr_url=pull.html_url), branch


async def push_follow_up(
    run: Run, pr: PullTarget, done: Execution, base_sha: str, common: dict[str, Any]
) -> Progress:
    """A follow-up commit on the PR's own branch, only if nobody pushed since the run began;
    each review comment it answers gets a reply in its thread."""
    head_ref = pr.head_ref
    if await run.talker.branch_sha(head_ref) != base_sha:
        return moved(head_ref, common)
    title = run.request.task.instruction or "Follow-up"
    head_sha = await push(run, done, base_sha, head_ref, title, new_branch=False)
    shown = shown_result(done, common)
    if pr.number != run.number:  # asked on the issue: name the pull request it changed
        pull = await run.talker.pull(pr.number)
        shown = replace(shown, pr_url=pull.html_url if pull else None)
    publisher = await run.client(PUBLISH)
    ledger = await asyncio.to_thread(ledger_text, run, done, pr.number, head_ref)
    await report_check(run, publisher, shown, head_sha, ledger)
    await reply_in_threads(run, pr.number, pr.reply_to, head_sha, done)
    return shown


def short_summary(text: str, limit: int = 600) -> str:
    first = text.strip().split("\n\n", 1)[0].strip()
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


async def reply_in_threads(
    run: Run, number: int, comment_ids: Iterable[int], head_sha: str, done: Execution
) -> None:
    summary = short_summary(done.summary) or "I changed the code to address this."
    body = run.clean(f"Addressed in {head_sha[:7]}: {summary}")
    for comment_id in comment_ids:
        await run.talker.reply_to_review_comment(number, int(comment_id), body)
        await run.audit("review.reply", f"{run.repo_name}#{number}", comment=int(comment_id))


def ledger_text(run: Run, done: Execution, number: int, branch: str) -> str:
    """What the change cost so far, this run included, for the check run."""
    current = {
        "id": run.run_id,
        "cost_usd": done.cost_usd,
        "sandbox_wall_seconds": done.sandbox_wall_seconds,
        "sandbox_cpu_seconds": done.sandbox_cpu_seconds,
        **done.usage.as_dict(),
    }
    ledger = change_so_far(run.deps.store, run.repo_name, number, branch, current)
    lines = ledger_lines(ledger, rates_of(run.deps.settings))
    return "## What this change cost so far\n\n" + "\n".join(lines)


async def report_check(
    run: Run, writer: RepoClient, shown: Progress, head_sha: str, ledger: str = ""
) -> None:
    """The `Shipmate` check run on a commit Shipmate pushed, with the sticky comment's summary
    and the change's ledger."""
    title, summary = check_output(shown)
    if ledger:
        summary = f"{summary}\n\n{ledger}"[:65_000]
    await writer.create_check_run(
        name="Shipmate",
        head_sha=head_sha,
        status="completed",
        conclusion="failure" if shown.tests_passed is False else "success",
        title=run.clean(title),
        summary=run.clean(summary),
        details_url=run.url,
        actions=[RETRY_ACTION] if shown.tests_passed is False else [],
    )


async def start_check(run: Run, head_sha: str) -> None:
    """While the task runs, the pull request's head shows it, with a Stop button."""
    checks = await run.client(CHECKS)
    live = await checks.create_check_run(
        name="Shipmate",
        head_sha=head_sha,
        status="in_progress",
        title=f"Working: /shipmate {run.verb}",
        summary="Shipmate is working on this pull request. **Stop** cancels it.",
        details_url=run.url,
        actions=[STOP_ACTION],
    )
    run.live_check = live.id


async def end_check(run: Run, final: Progress) -> None:
    """The in-progress check run ends with the task: its buttons go, Retry after a failure."""
    if run.live_check is None:
        return
    failed = final.stage in ("failed", "blocked", "stopped") or final.tests_passed is False
    title, summary = check_output(final)
    checks = await run.client(CHECKS)
    await checks.update_check_run(
        run.live_check,
        conclusion="failure" if failed else "neutral",
        title=run.clean(title),
        summary=run.clean(summary),
        actions=[RETRY_ACTION] if failed else [],
    )
    run.live_check = None
