"""The GitHub stand-in's REST front door: every request recorded, injected faults answered,
then held to GitHub's own description (tests/fixtures/github-openapi/) before its route runs.
A method and path GitHub's description has no operation for, or the stand-in no route for,
answers 404; a path parameter the description types as an integer that is not one answers
404; a JSON body the operation's request schema refuses answers GitHub's 422 ("Invalid
request.\\n\\n..."). Each credential's rate limit counts down as it is used."""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import re
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route as StarletteRoute

from standins.github_common import DOCS, Call, NotFound
from standins.github_core import Core, Recorded
from standins.github_openapi import description
from standins.github_routes import RULES, WEB, Handler, Route, routes

if TYPE_CHECKING:
    from standins.github import GitHubStandIn

FAULT_KINDS = (
    "rate_limit",
    "rate_limit_429",
    "secondary_limit",
    "secondary_limit_429",
    "server_error",
    "expired_token",
    "slow",
)
HANDLER_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


@dataclass
class Fault:
    pattern: re.Pattern[str]
    kind: str
    times: int
    seconds: float = 0.0
    status: int = 502


class Http(Core):
    faults: list[Fault]

    def _starlette(self) -> Starlette:
        self.faults = []
        self._routes = routes()
        return Starlette(
            routes=[
                StarletteRoute("/_logs/{key}", self._serve_log),
                StarletteRoute(
                    "/{owner}/{repo}.git/{rest:path}", self._git_http, methods=["GET", "POST"]
                ),
                StarletteRoute(
                    "/{path:path}", self._rest, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]
                ),
            ]
        )

    async def _git_http(self, request: Request) -> Response:
        raise NotImplementedError  # github_smart_http.SmartHttp

    def fail(
        self,
        route: str,
        kind: str,
        times: int = 1,
        seconds: float = 0.0,
        status: int | None = None,
    ) -> None:
        """Inject a failure into requests whose "METHOD /path" matches `route` ({x} = one segment).

        Kinds: "rate_limit" (403, primary limit, resets in `seconds`), "rate_limit_429",
        "secondary_limit" (403 with retry-after: `seconds`), "secondary_limit_429",
        "server_error" (`status`, 502 unless given a 5xx), "expired_token" (401), and "slow"
        (answers normally after `seconds`)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        if status is not None and (kind != "server_error" or not 500 <= status <= 599):
            raise ValueError("status is for server_error faults and must be a 5xx")
        pattern = re.escape(route).replace(r"\{", "{").replace(r"\}", "}")
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", pattern)
        self.faults.append(Fault(re.compile(f"^{pattern}$"), kind, times, seconds, status or 502))

    async def _fault(self, key: str) -> Response | None:
        for fault in self.faults:
            if fault.times > 0 and fault.pattern.match(key):
                fault.times -= 1
                if fault.kind == "slow":
                    await asyncio.sleep(fault.seconds or 1.0)
                    return None
                return self._fault_answer(fault)
        return None

    def _fault_answer(self, fault: Fault) -> Response:
        wait = fault.seconds or 1
        limited = 429 if fault.kind.endswith("_429") else 403
        if fault.kind.startswith("rate_limit"):
            return JSONResponse(
                {"message": "API rate limit exceeded for installation.", "documentation_url": DOCS},
                limited,
                headers=self._headers(0, time.time() + wait),
            )
        if fault.kind.startswith("secondary_limit"):
            return self._error(
                limited,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you "
                "try again.",
                {"retry-after": str(math.ceil(wait))},  # whole seconds, as GitHub sends
            )
        if fault.kind == "server_error":
            return self._error(fault.status, "Server Error")
        return self._error(401, "Bad credentials")

    async def _rest(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._error(400, "Problems parsing JSON")
        record = Recorded(request.method, path, request.url.query, dict(request.headers), body)
        self.requests.append(record)
        response = await self._fault(f"{request.method} {path}")
        if response is None:
            response = await self._answer(request, path, body)
            self._count_request(request, response)
        record.status = response.status_code
        return response

    def _count_request(self, request: Request, response: Response) -> None:
        """Each credential has its own 5,000 an hour, counted down as it is used."""
        bucket = request.headers.get("authorization", "") or f"ip:{request.client}"
        self._used[bucket] = used = self._used.get(bucket, 0) + 1
        response.headers["x-ratelimit-remaining"] = str(max(0, 5000 - used))
        response.headers["x-ratelimit-used"] = str(used)

    async def _answer(self, request: Request, path: str, body: Any) -> Response:
        """The route's answer; what GitHub would refuse is refused, never a bare 500. A request
        the stand-in could not handle answers 422 and is kept in `errors` for the test."""
        web = WEB.get((request.method, path))
        if web is not None:
            return await self._run(
                web, Call(request, {}, body if isinstance(body, dict) else {}, None)
            )
        found = description().match(request.method, path)
        route = self._routes.get((found[0].method, found[0].path)) if found else None
        if found is None or route is None:
            return self._error(404, "Not Found")
        operation, params = found
        if any(not params[name].isdigit() for name in operation.integer_params):
            return self._error(404, "Not Found")
        call = Call(request, params, body if isinstance(body, dict) else {}, self._token(request))
        denied = self._authorize(route, call)
        if denied is not None:
            return denied
        problem = description().request_problem(operation, body)
        rule = RULES.get((route.method, route.path))
        problem = problem or (rule(call.body) if rule else None)
        if problem:
            self.refused.append(f"{request.method} {path}: {problem}")
            return self._error(422, f"Invalid request.\n\n{problem}", docs=operation.docs)
        return await self._run(route.handler, call)

    async def _run(self, handler: Handler, call: Call) -> Response:
        try:
            answer = handler(cast("GitHubStandIn", self), call)
            return await answer if inspect.isawaitable(answer) else answer
        except NotFound:
            return self._error(404, "Not Found")
        except (*HANDLER_ERRORS, subprocess.SubprocessError) as exc:
            self.errors.append(f"{call.method} {call.request.url.path}: {exc!r}")
            return self._error(422, f"Invalid request.\n\n{exc!r}")

    def _authorize(self, route: Route, call: Call) -> Response | None:
        """The App's JWT for App routes; for a repository's routes an installation token that
        sees the repository, with the route's permission."""
        if route.auth == "app":
            app = self._app_from_jwt(call.request)
            if isinstance(app, JSONResponse):
                return app
            call.app = app
            return None
        if "owner" not in call.params:
            return None
        denied = self._allowed(call.token, call.repo, "metadata", "read")
        if denied is None and route.permission:
            name, level = route.permission.split(":")
            denied = self._allowed(call.token, call.repo, name, level)
        return denied

    async def _serve_log(self, request: Request) -> Response:
        entry = self._log_urls.get(request.path_params["key"])
        if entry is None or entry[1] < time.time():
            return PlainTextResponse("expired", 404)
        return PlainTextResponse(entry[0])
