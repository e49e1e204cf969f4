"""A run started from GitHub, from checkout to pull request: the `run` job.

Reads with a read-scoped token, pushes with a token scoped to the one repository and
contents/pull-requests write; the agent never sees either. One sticky comment per task is edited
as the task goes (queued -> planning -> running -> done/failed), and a `Shipmate` check run on
the new head carries the same summary. Shipmate opens pull requests; it never merges, never
force-pushes and never pushes to the default branch.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from bot.agent.budget import Budget
from bot.agent.execute import Execution, execute
from bot.agent.model import AnthropicModel, Model
from bot.agent.prompts import Brief
from bot.agent.result import commit_message, commit_patch
from bot.agent.transcript import Transcript
from bot.config import RepoConfigError, Settings, parse_repo_config, slugify
from bot.github import PUSH, READ, GitHubApp, RepoClient
from bot.queue import Job
from bot.render import Progress, check_output, pr_body, sticky_comment
from bot.sandbox.checkout import CheckoutCache
from bot.security import outbound
from bot.store import Store
from bot.worker import JobContext

log = structlog.get_logger("shipmate.runs")


def lock_key(repo: str, number: int) -> str:
    return f"{repo}#{number}"


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


class Sticky:
    """The task's one comment, edited in place; every text passes outbound redaction."""

    def __init__(
        self, repo: RepoClient, number: int, comment_id: int | None, known: tuple[str, ...]
    ) -> None:
        self.repo, self.number, self.comment_id, self.known = repo, number, comment_id, known

    async def show(self, progress: Progress) -> None:
        body = outbound(sticky_comment(progress), known=self.known, allowed_hosts=("github.com",))
        if self.comment_id is None:
            self.comment_id = await self.repo.comment(self.number, body)
        else:
            await self.repo.edit_comment(self.comment_id, body)


async def run_job(job: Job, context: JobContext, deps: RunDeps) -> None:
    p: dict[str, Any] = job.payload
    repo_name, number, verb = str(p["repo"]), int(p["number"]), str(p["verb"])
    installation_id = int(p["installation_id"])
    run_id = uuid.uuid4().hex[:12]
    app, store = deps.app, deps.store
    reader = RepoClient(
        await app.installation_client(installation_id, repository=repo_name, permissions=READ),
        repo_name,
    )
    writer = RepoClient(
        await app.installation_client(installation_id, repository=repo_name, permissions=PUSH),
        repo_name,
    )
    sticky = Sticky(writer, number, p.get("sticky_comment_id"), ())
    key = f"{repo_name.replace('/', '-')}-{number}"

    def progress(stage: str, **extra: Any) -> Progress:
        return Progress(key=key, verb=verb, stage=stage, **extra)  # type: ignore[arg-type]

    repository = await reader.repository()
    default_branch = str(repository["default_branch"])
    try:
        config = parse_repo_config(await reader.file_text(".github/shipmate.yml", default_branch))
    except RepoConfigError as exc:
        await sticky.show(progress("failed", reason=f"Shipmate cannot start: {exc}"))
        return
    issue = (
        await reader.github.rest.issues.async_get(reader.owner, reader.repo, number)
    ).raw_response.json()
    pr = p.get("pr")
    if pr:
        base_sha: str | None = str(pr["head_sha"])
    elif p.get("base_sha"):
        base_sha = str(p["base_sha"])  # a deploy follow-up starts from what was deployed
    else:
        base_sha = await reader.branch_sha(default_branch)
    if base_sha is None:
        await sticky.show(
            progress("failed", reason=f"The default branch {default_branch} has no commits.")
        )
        return
    await asyncio.to_thread(
        store.record_run,
        run_id,
        repo=repo_name,
        number=number,
        kind=verb,
        base_sha=base_sha,
        delivery_id=p.get("delivery_id"),
        comment_id=sticky.comment_id,
    )
    await asyncio.to_thread(
        store.append_audit,
        "run.start",
        run_id=run_id,
        delivery_id=p.get("delivery_id"),
        actor=p.get("actor"),
        target=lock_key(repo_name, number),
        detail={"verb": verb},
    )
    await sticky.show(progress("planning"))

    read_token = await app.installation_token(
        installation_id, repositories=[repo_name], permissions=READ
    )
    clone_url = str(
        repository.get("clone_url") or f"{deps.settings.github_api_url}/{repo_name}.git"
    )
    checkout = await asyncio.to_thread(deps.cache.tree, clone_url, base_sha, read_token.token)
    if pr:
        task = str(p.get("task") or "Make the smallest change that fixes the feedback below.")
        context_blocks = [
            (str(p.get("feedback_label") or "feedback"), str(p.get("feedback") or ""))
        ]
    else:
        notes = f" ({p['notes']})" if p.get("notes") else ""
        task = str(p.get("task") or f"Resolve issue #{number}: {issue.get('title', '')}{notes}")
        context_blocks = [("issue body", str(issue.get("body") or ""))]
        if p.get("feedback"):
            context_blocks.append((str(p.get("feedback_label") or "feedback"), str(p["feedback"])))
    brief = Brief(
        task=task,
        context=context_blocks,
        instructions=config.instructions,
        test_command=config.test,
        plan_only=verb == "plan",
    )
    budget = Budget(
        config.max_steps or deps.settings.max_steps,
        config.max_cost_usd or deps.settings.max_cost_usd,
        config.timeout_seconds or deps.settings.run_timeout_seconds,
        cancelled=context.should_abort,
    )
    model = deps.model()
    transcript = deps.settings.data_dir / "runs" / f"{run_id}.jsonl"
    try:
        done = await execute(
            checkout=checkout,
            base_sha=base_sha,
            brief=brief,
            config=config,
            model=model,
            budget=budget,
            transcript=Transcript(transcript, (read_token.token,)),
            store=store,
            run_id=run_id,
            ca_dir=deps.cache.root / "ca",
            # A fork's code never runs with secrets.
            secrets={} if p.get("fork") else None,
        )
    finally:
        deps.cache.release(checkout)
        close = getattr(model, "close", None)
        if close is not None:
            await close()
    await finish(
        deps,
        done,
        run_id,
        repo_name,
        number,
        verb,
        base_sha,
        default_branch,
        issue,
        writer,
        sticky,
        key,
        p,
    )


async def finish(
    deps: RunDeps,
    done: Execution,
    run_id: str,
    repo_name: str,
    number: int,
    verb: str,
    base_sha: str,
    default_branch: str,
    issue: dict[str, Any],
    writer: RepoClient,
    sticky: Sticky,
    key: str,
    p: dict[str, Any],
) -> None:
    store = deps.store
    usage = done.usage
    common: dict[str, Any] = {
        "key": key,
        "verb": verb,
        "plan": done.plan,
        "usage": usage,
        "cost_usd": done.cost_usd,
        "steps": done.steps,
        "sandbox_seconds": done.sandbox_wall_seconds,
    }
    branch = None
    pr_url = None
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
    elif not done.patch:
        final = Progress(stage="no_change", reason="No change was needed.", **common)
    elif p.get("pr"):
        final = await push_follow_up(deps, done, run_id, repo_name, base_sha, writer, common, p)
        branch = str(p["pr"]["head_ref"])
    else:
        title = str(issue.get("title") or f"issue {number}")
        branch = f"shipmate/{number}-{slugify(title, 30)}-{run_id[:6]}"
        token = await deps.app.installation_token(
            int(p["installation_id"]), repositories=[repo_name], permissions=PUSH
        )
        checkout_mirror = deps.cache.mirror(
            str((await writer.repository()).get("clone_url")), base_sha, token.token
        )
        head_sha = await asyncio.to_thread(
            commit_patch,
            checkout_mirror,
            base_sha,
            done.patch,
            branch,
            outbound(commit_message(f"Fix #{number}: {title}", done.summary), known=(token.token,)),
            push_to=str((await writer.repository()).get("clone_url")),
            token=token.token,
        )
        await asyncio.to_thread(
            store.append_audit,
            "git.push",
            run_id=run_id,
            actor="shipmate",
            target=branch,
            detail={"sha": head_sha},
        )
        draft = done.tests_passed is False
        shown = Progress(
            stage="done",
            diff=done.patch,
            tests_passed=done.tests_passed,
            test_summary=done.test_output[-1500:],
            **common,
        )
        pull = await writer.create_pull(
            head=branch,
            base=default_branch,
            title=f"Fix #{number}: {title}"[:250],
            body=outbound(
                pr_body(shown, issue_number=number),
                known=(token.token,),
                allowed_hosts=("github.com",),
            ),
            draft=draft,
        )
        pr_url = pull.html_url
        await asyncio.to_thread(
            store.append_audit,
            "pull_request.create",
            run_id=run_id,
            actor="shipmate",
            target=f"{repo_name}#{pull.number}",
        )
        await report_check(writer, shown, head_sha, token.token)
        final = Progress(
            stage="done",
            diff=done.patch,
            tests_passed=done.tests_passed,
            test_summary=done.test_output[-1500:],
            pr_url=pr_url,
            **common,
        )
    await sticky.show(final)
    await asyncio.to_thread(
        store.append_audit,
        "comment.edit",
        run_id=run_id,
        actor="shipmate",
        target=f"{repo_name}#{number}",
    )
    await asyncio.to_thread(
        store.update_run,
        run_id,
        status=done.status,
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
    log.info("run.finished", run_id=run_id, status=done.status, pr=pr_url)


async def push_follow_up(
    deps: RunDeps,
    done: Execution,
    run_id: str,
    repo_name: str,
    base_sha: str,
    writer: RepoClient,
    common: dict[str, Any],
    p: dict[str, Any],
) -> Progress:
    """A follow-up commit on the PR's own branch, only if nobody pushed since the run began."""
    head_ref = str(p["pr"]["head_ref"])
    if await writer.branch_sha(head_ref) != base_sha:
        return Progress(
            stage="stopped",
            reason=f"`{head_ref}` moved while I worked (someone pushed), so I pushed nothing. "
            "Comment `/shipmate retry` to start again from the new head.",
            **common,
        )
    token = await deps.app.installation_token(
        int(p["installation_id"]), repositories=[repo_name], permissions=PUSH
    )
    clone_url = str((await writer.repository()).get("clone_url"))
    mirror = deps.cache.mirror(clone_url, base_sha, token.token)
    message = outbound(
        commit_message(str(p.get("task") or "Follow-up"), done.summary), known=(token.token,)
    )
    head_sha = await asyncio.to_thread(
        commit_patch,
        mirror,
        base_sha,
        done.patch,
        head_ref,
        message,
        push_to=clone_url,
        token=token.token,
    )
    await asyncio.to_thread(
        deps.store.append_audit,
        "git.push",
        run_id=run_id,
        actor="shipmate",
        target=head_ref,
        detail={"sha": head_sha},
    )
    shown = Progress(
        stage="done",
        diff=done.patch,
        tests_passed=done.tests_passed,
        test_summary=done.test_output[-1500:],
        **common,
    )
    await report_check(writer, shown, head_sha, token.token)
    return shown


async def report_check(writer: RepoClient, shown: Progress, head_sha: str, token: str) -> None:
    """The `Shipmate` check run on a commit Shipmate pushed, with the sticky comment's summary."""
    title, summary = check_output(shown)
    await writer.create_check_run(
        name="Shipmate",
        head_sha=head_sha,
        status="completed",
        conclusion="failure" if shown.tests_passed is False else "success",
        title=title,
        summary=outbound(summary, known=(token,)),
    )


def deps_for(settings: Settings, store: Store) -> RunDeps | None:
    if not settings.has_app_credentials:
        return None
    return RunDeps(
        settings, store, GitHubApp(settings), CheckoutCache(Path(settings.data_dir) / "cache")
    )
