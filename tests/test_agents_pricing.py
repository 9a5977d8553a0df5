"""Model prices: name normalisation, unknown models at the highest rate, and overrides
(``orchestrate_pricing`` lines, ``orchestrate_pricing_file``) changing what a real call of a
fake CLI costs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from fakes import install_fakes

from pytest_orchestrator.agents.adapters import CodexAdapter
from pytest_orchestrator.agents.base import AgentRequest, AgentSpec
from pytest_orchestrator.agents.pricing import PricingTable, normalize

SHIPPED = PricingTable.shipped()


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("claude-sonnet-4.5", "claude-sonnet-4.5"),
        ("anthropic/claude-sonnet-4-5-20250929", "claude-sonnet-4.5"),  # prefix, date
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4.5"),  # Vertex AI's date
        ("Claude-Sonnet-4.5-latest", "claude-sonnet-4.5"),
        ("openai/gpt-4o-2024-08-06", "gpt-4o"),  # OpenAI's date
        ("claude-3-5-sonnet-20241022", "claude-3.5-sonnet"),
        ("claude-sonnet-4.5-xyz", "claude-sonnet-4.5-xyz"),  # not a version suffix
        ("claude-sonnet-4.5-2025", "claude-sonnet-4.5-2025"),  # not a whole date
        ("gpt-4o-mini", "gpt-4o-mini"),
    ],
)
def test_names_lose_only_the_provider_prefix_and_documented_suffixes(
    name: str, normal: str
) -> None:
    assert normalize(name) == normal


@pytest.mark.parametrize(
    "name",
    [
        "claude-sonnet-4-5-20250929",
        "anthropic/claude-sonnet-4-5-20250929",
        "claude-sonnet-4-5@20250929",
        "claude-sonnet-4.5-latest",
    ],
)
def test_a_dated_variant_has_its_models_price(name: str) -> None:
    assert SHIPPED.rate(name) == SHIPPED.rate("claude-sonnet-4.5")
    assert SHIPPED.rate(name).known
    assert SHIPPED.cost(name, 1_000_000, 0) == (3.0, None)


@pytest.mark.parametrize(
    "name", ["claude-sonnet-4.5-xyz", "gpt-4o-mini", "claude-sonnet-4.5-2025", "gemini-flash-pro"]
)
def test_another_model_is_priced_at_the_highest_rate_with_a_warning(name: str) -> None:
    highest = SHIPPED.highest
    assert SHIPPED.rate(name) == highest and not highest.known
    assert (highest.input, highest.output) == (10.0, 30.0)  # gpt-4-turbo
    usd, warning = SHIPPED.cost(name, 1_000_000, 1_000_000)
    assert usd == 40.0
    assert warning is not None and warning.startswith(f"model {name!r} has no price; priced at")
    assert "add it to orchestrate_pricing" in warning


def test_an_unnamed_model_is_priced_at_the_highest_rate_with_a_warning() -> None:
    usd, warning = SHIPPED.cost(None, 1_000_000, 0)
    assert usd == 10.0
    assert warning is not None and warning.startswith("the model is not known (none was given)")


def test_every_shipped_price_names_its_source() -> None:
    """Each model of the shipped table is one its vendor publishes, listed under that
    vendor's pricing page with the date of the figures."""
    from importlib import resources

    data = json.loads(
        resources.files("pytest_orchestrator.agents").joinpath("pricing.json").read_text()
    )
    listed = [m for source in data["sources"].values() for m in source["models"]]
    assert sorted(listed) == sorted(data["models"])
    for source in data["sources"].values():
        assert source["url"].startswith("https://") and re.fullmatch(
            r"\d{4}-\d{2}-\d{2}", source["as_of"]
        )
    assert "gemini-flash-pro" not in data["models"]  # no such model


def test_lines_override_the_file_which_overrides_the_shipped_table(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"gpt-4o": [2, 4], "my-model": [0.5, 1]}}))

    from_file = PricingTable.load(file=prices)
    assert (from_file.rate("gpt-4o").input, from_file.rate("gpt-4o").output) == (2.0, 4.0)
    assert from_file.rate("my-model").known
    assert from_file.rate("claude-haiku-4.5") == SHIPPED.rate("claude-haiku-4.5")

    # an override's name is normalised too: it replaces gpt-4o's price
    both = PricingTable.load(["openai/GPT-4o-2024-08-06=1/2"], prices)
    assert (both.rate("gpt-4o").input, both.rate("gpt-4o").output) == (1.0, 2.0)
    assert both.rate("my-model").known


@pytest.mark.skipif(os.name == "nt", reason="the fake CLIs are POSIX scripts")
def test_an_override_changes_what_a_real_call_costs(tmp_path: Path) -> None:
    bin_dir = install_fakes(tmp_path / "bin", ("codex",))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_AGENT_")}
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", os.defpath)])
    env.update(FAKE_AGENT_TOKENS_IN="1000", FAKE_AGENT_TOKENS_OUT="200")
    adapter = CodexAdapter(AgentSpec.parse("codex:openai/gpt-4o-2024-08-06"))
    request = AgentRequest(prompt="Review.", cwd=tmp_path, timeout=30)

    shipped = adapter.run(request, env, SHIPPED)
    overridden = adapter.run(request, env, PricingTable.load(["gpt-4o=1/2"]))

    assert shipped.cost_source == overridden.cost_source == "computed"
    assert shipped.cost_usd == round((1000 * 2.5 + 200 * 10) / 1e6, 6)  # gpt-4o: 2.5/10
    assert overridden.cost_usd == round((1000 * 1 + 200 * 2) / 1e6, 6)
    assert shipped.warnings == overridden.warnings == []
