"""The GitHub stand-in's git smart HTTP: clones and pushes through the real `git http-backend`,
private repositories and pushes behind an installation token with `contents` permission, and
each push recorded (with the pull requests whose head it moves)."""

from __future__ import annotations

import asyncio
import os
import subprocess

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from standins.github_common import LEVELS, Repo, Token, git
from standins.github_core import Recorded
from standins.github_http import Http


class SmartHttp(Http):
    async def _git_http(self, request: Request) -> Response:
        repo = f"{request.path_params['owner']}/{request.path_params['repo']}"
        rest = request.path_params["rest"]
        url = request.url
        self.requests.append(
            Recorded(request.method, url.path, url.query, dict(request.headers), None)
        )
        info = self.state.repos.get(repo)
        if info is None:
            return PlainTextResponse("Repository not found.", 404)
        service = request.query_params.get("service")
        pushing = rest == "git-receive-pack" or service == "git-receive-pack"
        token = self._token(request)
        denied = self._git_denied(info, token, pushing)
        if denied is not None:
            return denied
        before = self._heads(info) if pushing else {}
        response = await self._backend(request, self._backend_env(request, repo, rest, token))
        if pushing and rest == "git-receive-pack":
            self._after_push(info, before, token)
        return response

    def _git_denied(self, info: Repo, token: Token | None, pushing: bool) -> Response | None:
        """Private repositories and pushes need a token that sees the repository with
        `contents` read (write to push), as GitHub's git endpoint answers."""
        if not info.private and not pushing:
            return None
        if token is None:
            realm = {"WWW-Authenticate": 'Basic realm="GitHub"'}
            return PlainTextResponse("Invalid username or token.", 401, headers=realm)
        level = "write" if pushing else "read"
        granted = LEVELS.get(token.permissions.get("contents", "none"), 0)
        if info.full_name not in token.repositories or granted < LEVELS[level]:
            message = f"Permission to {info.full_name}.git denied to {self._bot(token)}."
            return PlainTextResponse(message, 403)
        return None

    def _backend_env(
        self, request: Request, repo: str, rest: str, token: Token | None
    ) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root / "git"),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{repo}.git/{rest}",
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": request.url.query,
            "CONTENT_TYPE": request.headers.get("content-type", ""),
            "REMOTE_USER": self._bot(token),
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": os.devnull,
            "STANDIN_WORKFLOWS": (token.permissions.get("workflows", "none") if token else "none"),
        }
        if request.headers.get("content-encoding") == "gzip":
            env["HTTP_CONTENT_ENCODING"] = "gzip"
        return env

    async def _backend(self, request: Request, env: dict[str, str]) -> Response:
        body = await request.body()
        process = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            env=env,
            # No stdin pipe for bodiless requests: under uvloop, feeding b"" to a backend that
            # already exited raises "the handler is closed" (a flaky 500 on info/refs).
            stdin=asyncio.subprocess.PIPE if body else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate(body or None)
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name] = value.strip()
        return Response(payload, status, headers=headers)

    def _heads(self, info: Repo) -> dict[str, str]:
        out = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", cwd=info.path)
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def _after_push(self, info: Repo, before: dict[str, str], token: Token | None) -> None:
        after = self._heads(info)
        for ref, sha in after.items():
            old = before.get(ref)
            if old == sha:
                continue
            fast_forward = (
                old is None
                or subprocess.run(
                    ["git", "merge-base", "--is-ancestor", old, sha], cwd=info.path, check=False
                ).returncode
                == 0
            )
            self.state.pushes.append(
                {
                    "repo": info.full_name,
                    "ref": ref,
                    "old": old,
                    "new": sha,
                    "fast_forward": fast_forward,
                    "pusher": self._bot(token),
                }
            )
            branch = ref.removeprefix("refs/heads/")
            for (repo, _), pull in self.state.pulls.items():
                if repo == info.full_name and pull["head"]["ref"] == branch:
                    pull["head"]["sha"] = sha
