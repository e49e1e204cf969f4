"""The model side: a `Model` protocol and the Anthropic implementation (official SDK, streaming
so long answers never hit the non-streaming limit; the SDK retries 429/529 itself), on
Anthropic's API, Amazon Bedrock or Google Vertex AI (SHIPMATE_MODEL_PROVIDER)."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, Unpack

from bot.agent.ledger import Usage
from bot.agent.pricing import UnpricedModel, price_for

PROVIDERS = ("anthropic", "bedrock", "vertex")
# What the SDK needs for each cloud, installed by Shipmate's extra of the same name.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "bedrock": ("boto3", "botocore"),
    "vertex": ("google.auth",),
}


class ModelUnavailable(Exception):
    """The configured model cannot be used: unknown provider, missing extra, no region, no
    price. The message says what to set or install."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package ("google")
        return False


def missing_extra(provider: str) -> str | None:
    """Why `provider` cannot be used in this installation, or None."""
    missing = [m for m in EXTRA_MODULES.get(provider, ()) if not _installed(m)]
    if not missing:
        return None
    return (
        f"the {provider} provider needs Shipmate's {provider} extra "
        f"(pip install 'shipmate[{provider}]'); missing: {', '.join(missing)}"
    )


def unusable(settings: ModelSettings) -> tuple[str, str] | None:
    """(the setting to change, why) when the configured model cannot be used here: its
    provider's extra is missing, or no price is known for it (a run could not keep its ledger
    or budget). Checked at start-up, not at the first run."""
    problem = missing_extra(settings.model_provider)
    if problem:
        return "SHIPMATE_MODEL_PROVIDER", problem
    try:
        price_for(settings.model)
    except UnpricedModel as exc:
        bad_table = "SHIPMATE_PRICES must be" in str(exc)
        return ("SHIPMATE_PRICES" if bad_table else "SHIPMATE_MODEL"), str(exc)
    return None


# Either is enough for Anthropic's API (the SDK reads them itself).
CREDENTIAL_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")


def missing_credential(
    settings: ModelSettings, environ: Mapping[str, str] | None = None
) -> tuple[str, str] | None:
    """(the variable to set, why) when the model's provider is Anthropic's API and no key is
    set: found at start-up, not as the SDK's TypeError at a run's first call, on the issue.
    Bedrock's and Vertex's credentials are their clouds' chains (files, instance metadata),
    which only a call can test."""
    environ = os.environ if environ is None else environ
    if settings.model_provider != "anthropic":
        return None
    if any(environ.get(name, "").strip() for name in CREDENTIAL_VARIABLES):
        return None
    return (
        "ANTHROPIC_API_KEY",
        "not set, so no run could call the model; set it (or ANTHROPIC_AUTH_TOKEN), or choose "
        "another provider with SHIPMATE_MODEL_PROVIDER",
    )


@dataclass(frozen=True)
class Reply:
    content: list[dict[str, Any]]
    stop_reason: str
    usage: Usage
    duration_ms: float

    @property
    def text(self) -> str:
        """The answer's text blocks, one per line, stripped."""
        blocks = (str(b.get("text") or "") for b in self.content if b.get("type") == "text")
        return "\n".join(blocks).strip()


class ModelSettings(Protocol):
    """What the model is chosen by (`bot.config.Settings` has these), so that the agent needs
    nothing of the configuration's module."""

    @property
    def model(self) -> str: ...
    @property
    def model_provider(self) -> str: ...
    @property
    def model_region(self) -> str | None: ...
    @property
    def model_project(self) -> str | None: ...


class ModelRequest(TypedDict):
    """What a model is asked with, the keywords of `Model.reply`: the system prompt's blocks,
    the conversation so far, the tools, and the answer's token limit."""

    system: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    max_tokens: int


class Model(Protocol):
    name: str

    async def reply(self, **request: Unpack[ModelRequest]) -> Reply: ...


class Relay:
    """A model that passes every request to `inner` unchanged and is shown each answer
    (`answered`): to record the answers, or to show the first one as the plan."""

    def __init__(self, inner: Model) -> None:
        self.inner, self.name = inner, inner.name

    async def reply(self, **request: Unpack[ModelRequest]) -> Reply:
        reply = await self.inner.reply(**request)
        await self.answered(reply, request["messages"])
        return reply

    async def answered(self, reply: Reply, messages: list[dict[str, Any]]) -> None:
        """What the relay does with each answer, given the request's messages; nothing here."""


def _block(block: Any) -> dict[str, Any]:
    """An SDK content block as the API takes it back in the next request."""
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    data: dict[str, Any] = block.model_dump(exclude_none=True)
    return data


class AnthropicModel:
    """Anthropic's API (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL); Bedrock (AWS credentials as
    boto3 finds them, `region` or AWS_REGION); Vertex (Google application default credentials,
    `region` or CLOUD_ML_REGION, `project` or ANTHROPIC_VERTEX_PROJECT_ID)."""

    def __init__(
        self,
        name: str,
        *,
        provider: str = "anthropic",
        region: str | None = None,
        project: str | None = None,
        max_retries: int = 4,
    ) -> None:
        import anthropic

        if provider not in PROVIDERS:
            raise ModelUnavailable(f"unknown model provider {provider!r}: use one of {PROVIDERS}")
        problem = missing_extra(provider)
        if problem:
            raise ModelUnavailable(problem)
        try:
            price_for(name)
        except UnpricedModel as exc:
            raise ModelUnavailable(str(exc)) from None
        self.name = name
        self.provider = provider
        client: Any
        try:
            if provider == "bedrock":
                client = anthropic.AsyncAnthropicBedrock(aws_region=region, max_retries=max_retries)
            elif provider == "vertex":
                client = anthropic.AsyncAnthropicVertex(
                    region=region or anthropic.NOT_GIVEN,
                    project_id=project or anthropic.NOT_GIVEN,
                    max_retries=max_retries,
                )
            else:
                client = anthropic.AsyncAnthropic(max_retries=max_retries)
        except (ValueError, anthropic.AnthropicError) as exc:
            raise ModelUnavailable(
                f"the {provider} client cannot start: {exc} (SHIPMATE_MODEL_REGION, "
                "SHIPMATE_MODEL_PROJECT)"
            ) from None
        self.client = client

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> AnthropicModel:
        return cls(
            settings.model,
            provider=settings.model_provider,
            region=settings.model_region,
            project=settings.model_project,
        )

    async def close(self) -> None:
        """Close the HTTP client on the loop that used it."""
        await self.client.close()

    async def reply(self, **request: Unpack[ModelRequest]) -> Reply:
        started = time.monotonic()
        async with self.client.messages.stream(model=self.name, **request) as stream:
            message = await stream.get_final_message()
        return Reply(
            content=[_block(b) for b in message.content],
            stop_reason=str(message.stop_reason),
            usage=Usage.from_api(message.usage),
            duration_ms=(time.monotonic() - started) * 1000,
        )
