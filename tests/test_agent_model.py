"""Choosing the model's provider (Anthropic, Bedrock, Vertex) and pricing its ids. The clients
are only constructed: nothing here reaches a network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anthropic
import pytest

from bot.agent import model as model_module
from bot.agent.ledger import Ledger, Usage, cost_usd
from bot.agent.model import AnthropicModel, ModelUnavailable, missing_extra
from bot.agent.pricing import UnpricedModel, anthropic_id, list_price, price_for
from bot.app import load_settings
from bot.config import ConfigError, Settings

SONNET = list_price(3.0, 15.0)


@pytest.fixture
def extras_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the cloud extras are installed (a module that always exists stands in)."""
    monkeypatch.setattr(model_module, "EXTRA_MODULES", {"bedrock": ("json",), "vertex": ("json",)})


@pytest.fixture(autouse=True)
def no_cloud_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "CLOUD_ML_REGION",
        "ANTHROPIC_VERTEX_PROJECT_ID",
        "SHIPMATE_PRICES",
        "SHIPMATE_MODEL_PROVIDER",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-sonnet-4-6", "claude-sonnet-4-6"),
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929"),
        ("us.anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1-20250805"),
        ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5-20251001"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
    ],
)
def test_bedrock_and_vertex_ids_name_the_anthropic_model(model: str, expected: str) -> None:
    assert anthropic_id(model) == expected


@pytest.mark.parametrize(
    ("model", "input_usd", "output_usd"),
    [
        ("claude-sonnet-4-6", 3.0, 15.0),
        ("us.anthropic.claude-opus-4-1-20250805-v1:0", 15.0, 75.0),
        ("anthropic.claude-opus-4-20250514-v1:0", 15.0, 75.0),
        ("claude-opus-4-5@20251101", 5.0, 25.0),
        ("eu.anthropic.claude-haiku-4-5-20251001-v1:0", 1.0, 5.0),
        ("claude-3-5-haiku@20241022", 0.8, 4.0),
        ("anthropic.claude-3-haiku-20240307-v1:0", 0.25, 1.25),
    ],
)
def test_cloud_ids_are_priced_as_their_model(
    model: str, input_usd: float, output_usd: float
) -> None:
    price = price_for(model)
    assert (price.input, price.output) == (input_usd, output_usd)
    assert price.cache_write == pytest.approx(input_usd * 1.25)
    assert price.cache_read == pytest.approx(input_usd * 0.1)


def test_an_unknown_model_is_an_error_not_sonnet() -> None:
    for model in ("gpt-4o", "arn:aws:bedrock:us-east-1:123:application-inference-profile/x"):
        with pytest.raises(UnpricedModel, match="SHIPMATE_PRICES"):
            price_for(model)
    with pytest.raises(UnpricedModel):
        Ledger("my-fine-tune")


def test_a_configured_price_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SHIPMATE_PRICES",
        json.dumps(
            {
                "my-fine-tune": {"input": 2, "output": 10},
                "claude-sonnet-4": {"input": 1, "output": 2},
            }
        ),
    )
    assert price_for("my-fine-tune-v3") == list_price(2.0, 10.0)
    # The configured table wins over the built-in one, for cloud ids too.
    assert price_for("us.anthropic.claude-sonnet-4-5-20250929-v1:0") == list_price(1.0, 2.0)
    usage = Usage(1_000_000, 1_000_000, 0, 0)
    assert cost_usd(usage, "my-fine-tune") == pytest.approx(12.0)


def test_a_malformed_price_table_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPMATE_PRICES", '{"x": {"output": 1}}')
    with pytest.raises(UnpricedModel, match="SHIPMATE_PRICES must be JSON"):
        price_for("x")


def test_the_default_provider_is_anthropics_api() -> None:
    model = AnthropicModel.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert type(model.client) is anthropic.AsyncAnthropic
    assert model.name == "claude-sonnet-4-6" and model.provider == "anthropic"


def test_bedrock_is_selected_with_its_region(
    monkeypatch: pytest.MonkeyPatch, extras_installed: None
) -> None:
    monkeypatch.setenv("SHIPMATE_MODEL_PROVIDER", "bedrock")
    monkeypatch.setenv("SHIPMATE_MODEL", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    monkeypatch.setenv("SHIPMATE_MODEL_REGION", "eu-west-1")
    model = AnthropicModel.from_settings(Settings.load())
    assert isinstance(model.client, anthropic.AsyncAnthropicBedrock)
    assert model.client.aws_region == "eu-west-1"
    assert str(model.client.base_url).startswith("https://bedrock-runtime.eu-west-1.amazonaws.com")


def test_vertex_is_selected_with_its_region_and_project(
    monkeypatch: pytest.MonkeyPatch, extras_installed: None
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        model_provider="vertex",
        model="claude-sonnet-4-5@20250929",
        model_region="europe-west1",
        model_project="acme-ml",
    )
    model = AnthropicModel.from_settings(settings)
    assert isinstance(model.client, anthropic.AsyncAnthropicVertex)
    assert model.client.region == "europe-west1" and model.client.project_id == "acme-ml"


def test_a_cloud_provider_without_a_region_says_what_to_set(extras_installed: None) -> None:
    with pytest.raises(ModelUnavailable, match="SHIPMATE_MODEL_REGION"):
        AnthropicModel("claude-sonnet-4-5@20250929", provider="vertex", project="acme-ml")


def test_a_missing_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        model_module,
        "EXTRA_MODULES",
        {"bedrock": ("no_such_module_boto",), "vertex": ("nope.auth",)},
    )
    assert missing_extra("anthropic") is None
    with pytest.raises(ModelUnavailable, match=r"pip install 'shipmate\[bedrock\]'"):
        AnthropicModel(
            "anthropic.claude-sonnet-4-5-20250929-v1:0", provider="bedrock", region="us-east-1"
        )
    with pytest.raises(ModelUnavailable, match=r"shipmate\[vertex\].*nope.auth"):
        AnthropicModel("claude-sonnet-4-5@20250929", provider="vertex", region="us-east5")
    # At start-up: load_settings() refuses the configuration, naming the setting.
    monkeypatch.setenv("SHIPMATE_MODEL_PROVIDER", "bedrock")
    with pytest.raises(ConfigError, match=r"SHIPMATE_MODEL_PROVIDER: .*shipmate\[bedrock\]"):
        load_settings()


def test_the_real_extras_are_what_the_check_looks_for() -> None:
    """In the default install (no extras) the real check finds boto3 / google-auth missing."""
    for provider, modules in model_module.EXTRA_MODULES.items():
        installed = all(model_module._installed(m) for m in modules)
        assert (missing_extra(provider) is None) == installed


def test_an_unknown_provider_or_unpriced_model_fails_before_any_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHIPMATE_MODEL_PROVIDER", "openai")
    with pytest.raises(ConfigError, match="SHIPMATE_MODEL_PROVIDER"):
        Settings.load()
    with pytest.raises(ModelUnavailable, match="unknown model provider"):
        AnthropicModel("claude-sonnet-4-6", provider="azure")
    with pytest.raises(ModelUnavailable, match="no price is known for the model 'gpt-4o'"):
        AnthropicModel("gpt-4o")


def test_shipmate_run_reports_an_unavailable_model(tmp_path: Path) -> None:
    import subprocess

    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = {
        "PATH": "/usr/bin:/bin",
        "SHIPMATE_DATA_DIR": str(tmp_path / "data"),
        "SHIPMATE_MODEL": "gpt-4o",
        "ANTHROPIC_API_KEY": "x",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", "--repo", str(repo), "--brief", "x"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    # Caught by the settings check at start-up, as one line naming the setting.
    assert done.stderr.startswith(
        "shipmate: configuration error: SHIPMATE_MODEL: no price is known for the model 'gpt-4o'"
    )
    assert len(done.stderr.strip().splitlines()) == 1
