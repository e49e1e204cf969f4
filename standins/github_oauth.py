"""The GitHub stand-in's OAuth web flow for an App's client, and what a signed-in user's token
reads: `GET /login/oauth/authorize` (GitHub's page, which sends the browser back with a code),
`POST /login/oauth/access_token` (the code for a user token, once), `GET /user`,
`GET /user/installations` and `GET /user/installations/{id}/repositories` (each repository with
the user's `permissions`, as GitHub answers a user-to-server token).

    client_id, client_secret = gh.oauth.client_for(app)
    gh.oauth.signed_in = "alice"  # who the browser is signed in to GitHub as
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from standins import github_shapes as shapes
from standins.github_common import App, Call, Installation, NotFound, now_iso

if TYPE_CHECKING:
    from standins.github import GitHubStandIn

TOKEN_SECONDS = 8 * 3600  # GitHub's expiring user-to-server tokens
# The collaborator permission -> the `permissions` GitHub shows the user on a repository.
ROLE_FLAGS = {
    "admin": ("admin", "maintain", "push", "triage", "pull"),
    "maintain": ("maintain", "push", "triage", "pull"),
    "write": ("push", "triage", "pull"),
    "triage": ("triage", "pull"),
    "read": ("pull",),
}


@dataclass(frozen=True)
class Client:
    app: App
    secret: str


@dataclass(frozen=True)
class Grant:
    """What a code, then its token, stands for: this user, through this App's client."""

    client_id: str
    login: str
    redirect_uri: str


def private_user(base: str, login: str) -> dict[str, Any]:
    """`GET /user`'s answer for the signed-in user (githubkit's PrivateUser)."""
    return {
        **shapes.user(base, login),
        "name": login.title(),
        "company": None,
        "blog": "",
        "location": None,
        "email": None,
        "hireable": None,
        "bio": None,
        "public_repos": 0,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": shapes.EPOCH,
        "updated_at": shapes.EPOCH,
        "private_gists": 0,
        "total_private_repos": 0,
        "owned_private_repos": 0,
        "disk_usage": 0,
        "collaborators": 0,
        "two_factor_authentication": True,
    }


def installation_json(base: str, installation: Installation) -> dict[str, Any]:
    account = shapes.user(base, installation.account)
    return {
        "id": installation.id,
        "account": account,
        "repository_selection": "selected",
        "access_tokens_url": f"{base}/app/installations/{installation.id}/access_tokens",
        "repositories_url": f"{base}/installation/repositories",
        "html_url": f"{base}/settings/installations/{installation.id}",
        "app_id": installation.app.id,
        "app_slug": installation.app.slug,
        "target_id": account["id"],
        "target_type": "User",
        "permissions": dict(installation.permissions),
        "events": [],
        "created_at": shapes.EPOCH,
        "updated_at": shapes.EPOCH,
        "single_file_name": None,
        "suspended_by": None,
        "suspended_at": None,
    }


class OAuthWeb:
    """The stand-in's OAuth clients (one per App), codes and user tokens."""

    def __init__(self, gh: GitHubStandIn) -> None:
        self.gh = gh
        self.clients: dict[str, Client] = {}
        self.signed_in: str | None = None
        self.codes: dict[str, Grant] = {}
        self.tokens: dict[str, Grant] = {}

    def client_for(
        self, app: App, client_id: str | None = None, secret: str | None = None
    ) -> tuple[str, str]:
        """The App's OAuth client id and secret (as the manifest conversion returns them):
        made up, unless given (settings that name them before the stand-in starts)."""
        for known, client in self.clients.items():
            if client.app.id == app.id and client_id in (None, known):
                return known, client.secret
        client_id = client_id or f"Iv1.{secrets.token_hex(8)}"
        self.clients[client_id] = Client(app, secret or secrets.token_hex(20))
        return client_id, self.clients[client_id].secret

    def authorize(self, request: Request) -> Response:
        query = request.query_params
        client = self.clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if client is None:
            return PlainTextResponse("The client_id is not one of a registered App.", 404)
        if urlsplit(redirect_uri).scheme not in ("http", "https"):
            return PlainTextResponse("The redirect_uri is not an address.", 400)
        if self.signed_in is None:
            return PlainTextResponse("Nobody is signed in to the GitHub stand-in.", 401)
        code = secrets.token_hex(10)
        self.codes[code] = Grant(query["client_id"], self.signed_in, redirect_uri)
        back = urlencode({"code": code, "state": query.get("state", "")})
        return RedirectResponse(f"{redirect_uri}?{back}", 302)

    def exchange(self, body: dict[str, Any]) -> Response:
        """A code for a token, once; GitHub answers a bad one with 200 and an `error`."""
        client = self.clients.get(str(body.get("client_id", "")))
        grant = self.codes.pop(str(body.get("code", "")), None)
        if (
            client is None
            or body.get("client_secret") != client.secret
            or grant is None
            or grant.client_id != body.get("client_id")
            or (body.get("redirect_uri") and body.get("redirect_uri") != grant.redirect_uri)
        ):
            return self.gh._json(
                {
                    "error": "bad_verification_code",
                    "error_description": "The code passed is incorrect or expired.",
                    "error_uri": "https://docs.github.com/apps/troubleshooting",
                }
            )
        token = "ghu_" + secrets.token_hex(18)
        self.tokens[token] = grant
        return self.gh._json(
            {
                "access_token": token,
                "expires_in": TOKEN_SECONDS,
                "refresh_token": "ghr_" + secrets.token_hex(30),
                "refresh_token_expires_in": 6 * 30 * 86400,
                "token_type": "bearer",
                "scope": "",
                "created_at": now_iso(),
            }
        )

    def grant(self, request: Request) -> Grant | None:
        auth = request.headers.get("authorization", "")
        return self.tokens.get(auth.split(" ", 1)[1] if " " in auth else "")

    def _role(self, login: str, repo: str, installation: Installation) -> str | None:
        if installation.account == login:
            return "admin"
        return self.gh.state.collaborators.get((repo, login))

    def installations(self, grant: Grant) -> list[Installation]:
        """The installations of the token's App in which the user can see a repository."""
        app = self.clients[grant.client_id].app
        return [
            installation
            for installation in self.gh.installations.values()
            if installation.app.id == app.id
            and any(self._role(grant.login, r, installation) for r in installation.repositories)
        ]

    def repositories(self, request: Request, grant: Grant, installation_id: int) -> Response:
        installation = next((i for i in self.installations(grant) if i.id == installation_id), None)
        if installation is None:
            raise NotFound
        listed = []
        for full_name in installation.repositories:
            role = self._role(grant.login, full_name, installation)
            info = self.gh.state.repos.get(full_name)
            if role is None or info is None:
                continue
            flags = ROLE_FLAGS.get(role, ("pull",))
            repo = self.gh._repo_json(info)
            repo["permissions"] = {name: name in flags for name in ROLE_FLAGS["admin"]}
            listed.append(repo)
        return self.gh._paginate(request, listed, key="repositories")


# The route table's handlers (standins/github_routes.py). The web flow is github.com's, not the
# REST API's, so GitHub's REST description does not hold it; the user routes are the API's.


def authorize(gh: GitHubStandIn, call: Call) -> Response:
    return gh.oauth.authorize(call.request)


def exchange(gh: GitHubStandIn, call: Call) -> Response:
    return gh.oauth.exchange(call.body)


def _signed_in(gh: GitHubStandIn, call: Call) -> Grant | Response:
    grant = gh.oauth.grant(call.request)
    return grant if grant is not None else gh._error(401, "Requires authentication")


def get_user(gh: GitHubStandIn, call: Call) -> Response:
    grant = _signed_in(gh, call)
    if not isinstance(grant, Grant):
        return grant
    return gh._json(private_user(gh.url, grant.login))


def user_installations(gh: GitHubStandIn, call: Call) -> Response:
    grant = _signed_in(gh, call)
    if not isinstance(grant, Grant):
        return grant
    found = [installation_json(gh.url, i) for i in gh.oauth.installations(grant)]
    return gh._paginate(call.request, found, key="installations")


def installation_repositories(gh: GitHubStandIn, call: Call) -> Response:
    grant = _signed_in(gh, call)
    if not isinstance(grant, Grant):
        return grant
    return gh.oauth.repositories(call.request, grant, call.number("installation_id"))
