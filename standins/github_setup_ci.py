"""Setting the GitHub stand-in's CI up, and the records its CI routes share: check suites and
runs (other Apps' and the App's own), Actions workflow runs and jobs, deployments and their
statuses."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from standins import github_shapes_ci as shapes
from standins.github_common import DEPLOYMENT_STATES, git, now_iso, public
from standins.github_core import Core
from standins.github_shapes import simple_commit
from standins.github_shapes_pulls import pull_minimal


class CISetup(Core):
    def add_job_log(self, repo: str, text: str, name: str = "test") -> int:
        """A failed Actions job with this log, outside any workflow run."""
        sha = self.branch_sha(repo, self.state.repos[repo].default_branch) or ""
        spec = {"name": name, "conclusion": "failure", "log": text}
        return self._new_job(repo, 0, "CI", spec, sha, None)

    def _new_job(
        self,
        repo: str,
        run_id: int,
        workflow: str,
        spec: Mapping[str, Any],
        head_sha: str,
        head_branch: str | None,
    ) -> int:
        job_id = self.next_id()
        conclusion = spec.get("conclusion", "failure")
        steps = spec.get("steps") or [
            {"name": "Set up job", "conclusion": "success"},
            {"name": f"Run {spec['name']}", "conclusion": conclusion},
            {"name": "Complete job", "conclusion": "success" if conclusion else None},
        ]
        job = shapes.job(
            job_id=job_id,
            repo=self._repo_json(self.state.repos[repo]),
            run_id=run_id,
            workflow_name=workflow,
            name=spec["name"],
            head_sha=head_sha,
            head_branch=head_branch,
            conclusion=conclusion,
            steps=steps,
            when=now_iso(),
        )
        self.state.jobs[job_id] = {**job, "_repo": repo, "_log": spec.get("log", "")}
        return job_id

    def create_check_suite(
        self,
        repo: str,
        *,
        head_sha: str,
        head_branch: str | None,
        conclusion: str | None = "failure",
        app_slug: str = "github-actions",
        check_runs: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """A completed check suite of another App (GitHub Actions by default) on `head_sha`, with
        its check runs ({"name", "conclusion", "output": {"title", "summary", "text"}})."""
        suite = self._finished_suite(repo, head_sha, head_branch, app_slug, conclusion)
        for spec in check_runs:
            self._new_check_run(repo, suite, {"head_sha": head_sha, "status": "completed", **spec})
        return self._suite_out(suite)

    def _finished_suite(
        self, repo: str, head_sha: str, head_branch: str | None, slug: str, conclusion: str | None
    ) -> dict[str, Any]:
        suite = self._new_suite(repo, head_sha, head_branch, self._app_json(slug))
        suite.update(status="completed" if conclusion else "in_progress", conclusion=conclusion)
        suite["_derived"] = False
        return suite

    def create_workflow_run(
        self,
        repo: str,
        *,
        name: str,
        head_sha: str,
        head_branch: str,
        conclusion: str | None = "failure",
        jobs: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """A finished Actions workflow run with its check suite and jobs ({"name", "conclusion",
        "log"}, optionally "steps": [{"name", "conclusion"}]); each job is also a check run of
        the same id, as on GitHub."""
        suite = self._finished_suite(repo, head_sha, head_branch, "github-actions", conclusion)
        run = shapes.workflow_run(
            run_id=self.next_id(),
            repo=self._repo_json(self.state.repos[repo]),
            actor=self._user("octocat"),
            name=name,
            head_sha=head_sha,
            head_branch=head_branch,
            conclusion=conclusion,
            suite_id=suite["id"],
            head_commit=self._head_commit(repo, head_sha),
            pulls=self._pulls_headed_at(repo, head_sha),
            when=now_iso(),
        )
        self.state.workflow_runs[run["id"]] = {**run, "_repo": repo}
        for spec in jobs:
            job = self.state.jobs[self._new_job(repo, run["id"], name, spec, head_sha, head_branch)]
            fields = {
                "name": spec["name"],
                "head_sha": head_sha,
                "status": "completed",
                "conclusion": job["conclusion"],
                "details_url": job["html_url"],
                "output": {"title": f"{spec['name']} {job['conclusion']}", "summary": ""},
            }
            self._new_check_run(repo, suite, fields, run_id=job["id"])
        return public(run)

    def create_deployment(
        self, repo: str, *, ref: str, sha: str, environment: str = "production"
    ) -> dict[str, Any]:
        """A deployment of `sha` (from `ref`) made by a person's deploy tool."""
        return public(self._new_deployment(repo, ref, sha, environment, "octocat", {}))

    def add_deployment_status(
        self,
        repo: str,
        deployment_id: int,
        *,
        state: str,
        description: str = "",
        log_url: str = "",
        target_url: str = "",
        environment_url: str = "",
    ) -> dict[str, Any]:
        deployment = self.state.deployments[deployment_id]
        if deployment["_repo"] != repo:
            raise ValueError(f"deployment {deployment_id} is not in {repo}")
        if state not in DEPLOYMENT_STATES:
            raise ValueError(f"state must be one of {', '.join(DEPLOYMENT_STATES)}, not {state!r}")
        fields = {"state": state, "description": description, "log_url": log_url}
        fields |= {"target_url": target_url, "environment_url": environment_url}
        return self._new_deployment_status(deployment, "deploy-bot", fields)

    # The records the CI routes share -------------------------------------------------------

    def _head_commit(self, repo: str, sha: str) -> dict[str, Any]:
        try:
            tree, _, message = git(
                "show", "-s", "--format=%T%x00%B", sha, "--", cwd=self.state.repos[repo].path
            ).partition("\0")
        except subprocess.CalledProcessError:
            tree, message = "", ""
        return simple_commit(sha, tree, message.strip(), now_iso())

    def _branch_at(self, repo: str, sha: str) -> str | None:
        path = self.state.repos[repo].path
        short, at = "--format=%(refname:short)", f"--points-at={sha}"
        try:
            out = git("for-each-ref", short, at, "refs/heads", cwd=path)
        except subprocess.CalledProcessError:
            return None
        return out.split()[0] if out.split() else None

    def _pulls_headed_at(self, repo: str, sha: str) -> list[dict[str, Any]]:
        info = self.state.repos[repo]
        return [
            pull_minimal(self.url, repo, info.id, p)
            for (r, _), p in self.state.pulls.items()
            if r == repo and p["state"] == "open" and p["head"]["sha"] == sha
        ]

    def _new_suite(
        self, repo: str, head_sha: str, head_branch: str | None, app: dict[str, Any]
    ) -> dict[str, Any]:
        suite = shapes.check_suite(
            suite_id=self.next_id(),
            repo=self._repo_json(self.state.repos[repo]),
            app=app,
            head_sha=head_sha,
            head_branch=head_branch,
            status="queued",
            conclusion=None,
            head_commit=self._head_commit(repo, head_sha),
            pulls=self._pulls_headed_at(repo, head_sha),
            when=now_iso(),
        )
        suite.update(_repo=repo, _derived=True)
        self.state.check_suites[suite["id"]] = suite
        return suite

    def _app_suite(self, repo: str, head_sha: str, slug: str) -> dict[str, Any]:
        """The suite an App's check runs on a commit go into (made on its first check run)."""
        for suite in self.state.check_suites.values():
            same = suite["_repo"] == repo and suite["head_sha"] == head_sha
            if same and suite["app"]["slug"] == slug:
                return suite
        branch = self._branch_at(repo, head_sha)
        return self._new_suite(repo, head_sha, branch, self._app_json(slug))

    def _suite_runs(self, suite_id: int) -> list[dict[str, Any]]:
        return [r for r in self.state.check_runs.values() if r["check_suite"]["id"] == suite_id]

    def _suite_out(self, suite: dict[str, Any]) -> dict[str, Any]:
        runs = self._suite_runs(suite["id"])
        out = public(suite)
        out["latest_check_runs_count"] = len(runs)
        if suite["_derived"] and runs:
            done = all(r["status"] == "completed" for r in runs)
            out["status"] = "completed" if done else "in_progress"
            out["conclusion"] = overall([r["conclusion"] for r in runs]) if done else None
        return out

    def _new_check_run(
        self,
        repo: str,
        suite: dict[str, Any],
        fields: Mapping[str, Any],
        run_id: int | None = None,
    ) -> dict[str, Any]:
        run = shapes.check_run(
            run_id=run_id or self.next_id(),
            repo=self._repo_json(self.state.repos[repo]),
            app=suite["app"],
            suite_id=suite["id"],
            fields=fields,
            pulls=self._pulls_headed_at(repo, str(fields.get("head_sha", ""))),
            when=now_iso(),
        )
        run["_repo"] = repo
        # GitHub keeps a check run's buttons but never shows them in its answers.
        run["_actions"] = list(fields.get("actions") or [])
        self.state.check_runs[run["id"]] = run
        return run

    def _new_deployment(
        self, repo: str, ref: str, sha: str, environment: str, creator: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        deployment = shapes.deployment(
            deployment_id=self.next_id(),
            repo=self._repo_json(self.state.repos[repo]),
            creator=self._user(creator),
            ref=ref,
            sha=sha,
            environment=environment,
            task=str(body.get("task") or "deploy"),
            description=body.get("description"),
            payload=body.get("payload"),
            when=now_iso(),
        )
        self.state.deployments[deployment["id"]] = {**deployment, "_repo": repo}
        self.state.deployment_statuses[deployment["id"]] = []
        return deployment

    def _new_deployment_status(
        self, deployment: Mapping[str, Any], creator: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        status = shapes.deployment_status(
            status_id=self.next_id(),
            deployment=deployment,
            creator=self._user(creator),
            state=str(body["state"]),
            description=str(body.get("description") or ""),
            log_url=str(body.get("log_url") or ""),
            target_url=str(body.get("target_url") or ""),
            environment_url=str(body.get("environment_url") or ""),
            when=now_iso(),
        )
        self.state.deployment_statuses[deployment["id"]].insert(0, status)
        return status


def overall(conclusions: Sequence[str | None]) -> str:
    """A suite's conclusion from its runs', worst first, as GitHub ranks them."""
    for worst in ("action_required", "cancelled", "timed_out", "failure", "stale"):
        if worst in conclusions:
            return worst
    return "neutral" if all(c in ("neutral", "skipped") for c in conclusions) else "success"
