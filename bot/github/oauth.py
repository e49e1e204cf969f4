"""Signing in to the dashboard with GitHub: the App's OAuth web flow (client id and secret from
the manifest registration, or SHIPMATE_GITHUB_CLIENT_ID / _SECRET). The user's token lives only
for this exchange; what is kept is their login and the repositories of this App's installations
they can write to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from githubkit import GitHub, OAuthWebAuthStrategy

from bot.github.retry import RetryPolicy

WRITE = ("admin", "maintain", "push")


@dataclass(frozen=True)
class SignedIn:
    login: str
    repos: tuple[str, ...]


class SignInFailed(Exception):
    """GitHub refused the code, or answered something else than a user."""


def authorize_url(web_url: str, client_id: str, state: str, redirect_uri: str) -> str:
    query = urlencode({"client_id": client_id, "state": state, "redirect_uri": redirect_uri})
    return f"{web_url.rstrip('/')}/login/oauth/authorize?{query}"


async def _writable(
    github: GitHub[OAuthWebAuthStrategy], policy: RetryPolicy, installation_id: int
) -> list[str]:
    async def page() -> Any:
        return await github.rest.apps.async_list_installation_repos_for_authenticated_user(
            installation_id, per_page=100
        )

    listed = (await policy.call(page)).parsed_data.repositories
    return [
        repo.full_name
        for repo in listed
        if repo.permissions is not None
        and any(getattr(repo.permissions, name, False) for name in WRITE)
    ]


async def sign_in(
    api_url: str,
    app_id: int | None,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    *,
    retry: RetryPolicy | None = None,
) -> SignedIn:
    """The user behind `code` and the repositories they may write to, among this App's."""
    policy = retry or RetryPolicy()
    auth = OAuthWebAuthStrategy(client_id, client_secret, code, redirect_uri)
    async with GitHub(auth, base_url=api_url) as github:
        try:
            # The code is single use: the first call (which exchanges it) is not retried.
            user = (await github.rest.users.async_get_authenticated()).parsed_data
        except Exception as exc:  # githubkit raises its own and httpx's errors here
            raise SignInFailed(
                f"GitHub did not accept the sign-in ({type(exc).__name__})"
            ) from None
        installations = (
            await policy.call(
                lambda: github.rest.apps.async_list_installations_for_authenticated_user(
                    per_page=100
                )
            )
        ).parsed_data.installations
        repos: list[str] = []
        for installation in installations:
            if app_id is not None and installation.app_id != app_id:
                continue
            repos.extend(await _writable(github, policy, installation.id))
    return SignedIn(user.login, tuple(sorted(set(repos))))
