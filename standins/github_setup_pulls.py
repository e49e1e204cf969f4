"""Setting the GitHub stand-in's pull requests up: opened from a branch or a fork, reviewed
with line comments, and merged as GitHub's merge button does."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from standins import github_shapes_pulls as shapes
from standins.github_common import Repo, git, now_iso
from standins.github_setup import RepoSetup


class PullSetup(RepoSetup):
    def create_pull(
        self, repo: str, head: str, title: str, user: str, base: str | None = None
    ) -> dict[str, Any]:
        info = self.state.repos[repo]
        return self._new_pull(
            repo,
            head_ref=head,
            head_repo=info,
            base_ref=base or info.default_branch,
            title=title,
            body="",
            author=user,
            draft=False,
        )

    def _new_pull(
        self,
        repo: str,
        *,
        head_ref: str,
        head_repo: Repo,
        base_ref: str,
        title: str,
        body: str | None,
        author: str,
        draft: bool,
    ) -> dict[str, Any]:
        info = self.state.repos[repo]
        number = self._next_number(repo)
        head_sha = self.branch_sha(head_repo.full_name, head_ref)
        head_owner = self._user(head_repo.full_name.split("/")[0])
        pull = shapes.pull_request(
            self.url,
            repo,
            pull_id=self.next_id(),
            number=number,
            title=title,
            body=body,
            author=self._user(author),
            head=shapes.pull_ref(head_ref, head_sha, self._repo_json(head_repo), head_owner),
            base_ref=shapes.pull_ref(
                base_ref,
                self.branch_sha(repo, base_ref),
                self._repo_json(info),
                self._user(repo.split("/")[0]),
            ),
            draft=draft,
            created_at=now_iso(),
        )
        self.state.pulls[(repo, number)] = pull
        return pull

    def create_fork_pull(
        self, repo: str, fork: str, branch: str, files: Mapping[str, str], title: str, user: str
    ) -> dict[str, Any]:
        """A pull request from `fork` (a copy of `repo`); its head is also kept in the base
        repository as refs/pull/N/head, as GitHub does."""
        base = self.state.repos[repo]
        fork_path = self.root / "git" / f"{fork}.git"
        fork_path.parent.mkdir(parents=True, exist_ok=True)
        git("clone", "-q", "--bare", str(base.path), str(fork_path))
        self.state.repos[fork] = Repo(fork, self.next_id(), fork_path, base.default_branch)
        self.commit(fork, branch, files, title)
        pull = self._new_pull(
            repo,
            head_ref=branch,
            head_repo=self.state.repos[fork],
            base_ref=base.default_branch,
            title=title,
            body="",
            author=user,
            draft=False,
        )
        refspec = f"refs/heads/{branch}:refs/pull/{pull['number']}/head"
        git("fetch", "-q", str(fork_path), refspec, cwd=base.path)
        return pull

    def add_review(
        self,
        repo: str,
        number: int,
        user: str,
        state: str,
        body: str,
        comments: Sequence[tuple[str, int, str]],
    ) -> dict[str, Any]:
        """A submitted review by a person, with (path, line, text) comments."""
        fields = [{"path": p, "line": n, "body": t} for p, n, t in comments]
        return self._new_review(repo, number, user, state.upper(), body, fields)

    def _new_review(
        self,
        repo: str,
        number: int,
        user: str,
        state: str,
        body: str,
        comments: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        pull = self.state.pulls[(repo, number)]
        review = shapes.review(pull, self.next_id(), self._user(user), state, body, now_iso())
        self.state.reviews.setdefault((repo, number), []).append(review)
        for comment in comments:
            self._new_review_comment(repo, pull, review["id"], user, comment)
        return review

    def _new_review_comment(
        self,
        repo: str,
        pull: Mapping[str, Any],
        review_id: int,
        user: str,
        fields: Mapping[str, Any],
        in_reply_to: int | None = None,
    ) -> dict[str, Any]:
        comment = shapes.review_comment(
            self.url,
            repo,
            pull,
            comment_id=self.next_id(),
            review_id=review_id,
            author=self._user(user),
            fields=fields,
            when=now_iso(),
        )
        if in_reply_to is not None:
            comment["in_reply_to_id"] = in_reply_to
        comment.update(_repo=repo, _pull=pull["number"])
        self.state.review_comments[comment["id"]] = comment
        return comment

    def merge_pull(self, repo: str, number: int) -> str:
        """Merge a pull request as GitHub's merge button does: a merge commit on the base branch
        of the bare repository; the pull request is then merged and closed. Returns the commit."""
        info, pull = self.state.repos[repo], self.state.pulls[(repo, number)]
        if pull["state"] != "open":
            raise ValueError(f"pull request #{number} is {pull['state']}, not open")
        base_ref, head_sha = pull["base"]["ref"], pull["head"]["sha"]
        base_sha = self.branch_sha(repo, base_ref)
        if base_sha is None or not head_sha:
            raise ValueError(f"pull request #{number} has no base branch or head commit")
        try:
            tree = git("merge-tree", "--write-tree", base_sha, head_sha, cwd=info.path).split()[0]
        except subprocess.CalledProcessError:
            raise ValueError(
                f"pull request #{number} does not merge cleanly into {base_ref}"
            ) from None
        head_owner = pull["head"]["repo"]["owner"]["login"]
        message = f"Merge pull request #{number} from {head_owner}/{pull['head']['ref']}\n\n{pull['title']}"
        identity = {
            "GIT_AUTHOR_NAME": "octocat",
            "GIT_AUTHOR_EMAIL": "o@example.com",
            "GIT_COMMITTER_NAME": "GitHub",
            "GIT_COMMITTER_EMAIL": "noreply@github.com",
        }
        parents = ("-p", base_sha, "-p", head_sha)
        merged = git("commit-tree", tree, *parents, "-m", message, cwd=info.path, env=identity)
        git("update-ref", f"refs/heads/{base_ref}", merged.strip(), base_sha, cwd=info.path)
        now = now_iso()
        pull.update(state="closed", merged=True, merged_at=now, closed_at=now, updated_at=now)
        pull.update(merge_commit_sha=merged.strip(), merged_by=self._user("octocat"))
        pull.update(mergeable=None, mergeable_state="unknown")
        return merged.strip()
