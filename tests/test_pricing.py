"""The pricing table: what ships, how model ids resolve, how operators change it, and what an
answer costs, counted in nano-dollars that never drift."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from edgeproxy.config import ConfigError
from edgeproxy.dialects import anthropic, openai
from edgeproxy.dialects.bedrock_stream import usage_of as bedrock_usage
from edgeproxy.dialects.neutral import Usage
from edgeproxy.pricing import (
    NANOS_PER_USD,
    ModelPrice,
    PricingTable,
    cost,
    cost_nanos,
    embedded_pricing_text,
    load_pricing,
    nanos,
)

REPO = Path(__file__).resolve().parents[1]
OFFICIAL_PAGES = {
    "openai": "https://developers.openai.com/api/docs/pricing",
    "anthropic": "https://platform.claude.com/docs/en/about-claude/pricing",
    "gemini": "https://ai.google.dev/gemini-api/docs/pricing",
    "bedrock": "https://aws.amazon.com/bedrock/pricing/",
}


@pytest.fixture(scope="module")
def table() -> PricingTable:
    return load_pricing()


def entry(**fields: Any) -> dict[str, Any]:
    """A complete entry an operator might write, with `fields` changed."""
    base = {
        "input": 1.0,
        "output": 2.0,
        "cached_input": 0.5,
        "cache_write": None,
        "source": "https://example.com/prices",
        "as_of": "2026-12-01",
    }
    return {**base, **fields}


def problems_of(**kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_pricing(**kwargs)
    return caught.value.problems


# --- the shipped table ------------------------------------------------------------------------


def test_reference_table_is_the_embedded_one() -> None:
    assert (REPO / "configs" / "pricing.yaml").read_text() == embedded_pricing_text()


def test_the_table_ships_as_package_data() -> None:
    setup = (REPO / "setup.cfg").read_text()
    assert "edgeproxy = default_config.yaml, pricing.yaml" in setup


def test_the_table_covers_the_four_providers_and_their_families(table: PricingTable) -> None:
    ids = {(section, model) for section, model, _ in table.entries()}
    expected = [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4.1"),
        ("openai", "o3"),
        ("openai", "o4-mini"),
        ("openai", "gpt-5.5"),
        ("openai", "text-embedding-3-small"),
        ("openai", "text-embedding-3-large"),
        ("anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-haiku-4-5"),
        ("anthropic", "claude-opus-4-1"),
        ("anthropic", "claude-3-5-haiku"),
        ("gemini", "gemini-2.5-pro"),
        ("gemini", "gemini-2.5-flash-lite"),
        ("gemini", "gemini-2.0-flash"),
        ("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0"),
        ("bedrock", "amazon.nova-pro-v1:0"),
        ("bedrock", "meta.llama3-3-70b-instruct-v1:0"),
        ("bedrock", "mistral.mistral-large-2402-v1:0"),
    ]
    assert [item for item in expected if item not in ids] == []


def test_every_entry_says_where_and_when_its_price_was_read(table: PricingTable) -> None:
    for section, model, price in table.entries():
        assert price.source == OFFICIAL_PAGES[section], model
        assert datetime.date.fromisoformat(price.as_of).year >= 2025, model


def test_every_price_is_sane(table: PricingTable) -> None:
    """Cache reads cost at most the input rate and cache writes at least it; a long-context
    tier costs at least the base rates; only embeddings have no output price."""
    for _, model, price in table.entries():
        assert 0 < price.input < 1000, model
        assert price.output > 0 or "embed" in model, model
        assert price.cached_input is None or 0 < price.cached_input <= price.input, model
        assert price.cache_write is None or price.cache_write >= price.input, model
        tier = price.long_context
        if tier is not None:
            assert tier.above_tokens >= 100_000, model
            assert (tier.input, tier.output) >= (price.input, price.output), model
            assert (tier.cached_input or 0) >= (price.cached_input or 0), model


# --- resolving model ids ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "model", "entry"),
    [
        ("openai", "gpt-4o", "openai/gpt-4o"),
        ("openai", "GPT-4o", "openai/gpt-4o"),
        ("openai", "gpt-4o-2024-08-06", "openai/gpt-4o"),
        ("openai", "gpt-4o-2024-05-13", "openai/gpt-4o-2024-05-13"),
        ("openai", "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),
        ("openai", "gpt-4.1-nano-2025-04-14", "openai/gpt-4.1-nano"),
        ("openai", "o3-mini-2025-01-31", "openai/o3-mini"),
        ("openai", "o1-preview", "openai/o1"),
        ("openai", "gpt-5-2025-08-07", "openai/gpt-5"),
        ("openai", "openai/gpt-4o", "openai/gpt-4o"),
        ("azure", "gpt-4o-mini", "openai/gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5"),
        ("anthropic", "claude-sonnet-4-20250514", "anthropic/claude-sonnet-4"),
        ("anthropic", "claude-opus-4-1-20250805", "anthropic/claude-opus-4-1"),
        ("anthropic", "claude-3-5-sonnet-latest", "anthropic/claude-3-5-sonnet"),
        ("anthropic", "claude-3-5-sonnet-v2@20241022", "anthropic/claude-3-5-sonnet"),
        ("gemini", "gemini-2.5-flash-preview-05-20", "gemini/gemini-2.5-flash"),
        ("gemini", "gemini-2.5-flash-lite-preview-06-17", "gemini/gemini-2.5-flash-lite"),
        ("gemini", "gemini-2.0-flash-001", "gemini/gemini-2.0-flash"),
        ("gemini", "gemini-3-pro-preview", "gemini/gemini-3-pro"),
        ("gemini", "gemini-2.5-flash-preview-09-2025", "gemini/gemini-2.5-flash"),
        (
            "bedrock",
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0",
        ),
        (
            "bedrock",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        (
            "bedrock",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "global.anthropic.claude-haiku-4-5-20251001-v1:0",
            "bedrock/anthropic.claude-haiku-4-5-20251001-v1:0",
        ),
        ("openai", "bedrock/amazon.nova-pro-v1:0", "bedrock/amazon.nova-pro-v1:0"),
    ],
)
def test_a_model_id_resolves_to_its_family_entry(
    table: PricingTable, kind: str, model: str, entry: str
) -> None:
    prices = {f"{section}/{model_id}": price for section, model_id, price in table.entries()}
    assert table.price(kind, model) is prices[entry]


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        ("openai", "gpt-4o-audio-preview"),  # priced differently: not gpt-4o
        ("openai", "gpt-4o-realtime-preview-2024-12-17"),
        ("anthropic", "claude-opus-4-2-20260101"),  # not claude-opus-4
        ("openai", "my-local-llama"),
        ("mock", "edgeproxy-mock"),
        ("openai", "claude-sonnet-4-5"),  # a provider prices its own models
    ],
)
def test_an_unknown_model_has_no_price(table: PricingTable, kind: str, model: str) -> None:
    assert table.price(kind, model) is None


# --- operators' changes -----------------------------------------------------------------------


def test_an_override_replaces_an_entry_whole() -> None:
    table = load_pricing({"openai": {"gpt-4o": entry(input=2.0, cached_input=None)}})
    price = table.price("openai", "gpt-4o-2024-08-06")
    assert price == ModelPrice(2.0, 2.0, None, None, "https://example.com/prices", "2026-12-01")


def test_an_override_extends_a_section_and_adds_new_ones() -> None:
    table = load_pricing(
        {
            "openai": {"ft:gpt-4o-mini:acme": entry(input=0.3)},
            "vllm": {"llama-3.3-70b": entry(input=0.0, output=0.0)},
        }
    )
    assert table.price("openai", "ft:gpt-4o-mini:acme") == ModelPrice(
        0.3, 2.0, 0.5, None, "https://example.com/prices", "2026-12-01"
    )
    assert table.price("openai", "vllm/llama-3.3-70b") is not None
    assert table.price("openai", "gpt-4o") is not None  # the rest of the table stays


def test_aliases_name_an_entry_by_another_id() -> None:
    table = load_pricing({"azure": {"gpt-4o": entry(aliases=["prod-chat", "Staging-Chat"])}})
    assert table.price("azure", "prod-chat") is table.price("azure", "gpt-4o")
    assert table.price("azure", "staging-chat") is table.price("azure", "gpt-4o")
    assert table.price("azure", "gpt-4o") != table.price("openai", "gpt-4o")


def test_inline_overrides_win_over_the_operator_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "openai:\n"
        "  gpt-4o: {input: 2.0, output: 8.0, source: contract 2026-11, as_of: 2026-11-01}\n"
        "  gpt-4o-mini: {input: 0.1, output: 0.4, source: contract 2026-11, as_of: 2026-11-01}\n"
    )
    table = load_pricing({"openai": {"gpt-4o": entry(input=1.5)}}, str(path))
    assert table.price("openai", "gpt-4o") == ModelPrice(
        1.5, 2.0, 0.5, None, "https://example.com/prices", "2026-12-01"
    )
    assert table.price("openai", "gpt-4o-mini") == ModelPrice(
        0.1, 0.4, None, None, "contract 2026-11", "2026-11-01"
    )


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ([], "pricing.overrides: expected a mapping of provider sections"),
        ({"openai": []}, "pricing.overrides.openai: expected a mapping of model ids to prices"),
        ({"openai": {"m": 3}}, "pricing.overrides.openai.m: expected a mapping of prices"),
        (
            {"openai": {"m": entry(input=None)}},
            "pricing.overrides.openai.m.input: required (US dollars per million tokens)",
        ),
        (
            {"openai": {"m": entry(output=-1)}},
            "pricing.overrides.openai.m.output: expected a number of dollars >= 0, got -1",
        ),
        (
            {"openai": {"m": entry(cached_input="cheap")}},
            "pricing.overrides.openai.m.cached_input: expected a number of dollars >= 0, "
            "got 'cheap'",
        ),
        (
            {"openai": {"m": entry(cache_write=True)}},
            "pricing.overrides.openai.m.cache_write: expected a number of dollars >= 0, got True",
        ),
        (
            {"openai": {"m": entry(source="")}},
            "pricing.overrides.openai.m.source: required: where the price was read",
        ),
        (
            {"openai": {"m": entry(as_of="last week")}},
            "pricing.overrides.openai.m.as_of: required: the date the price was read, as "
            "YYYY-MM-DD, got 'last week'",
        ),
        (
            {"openai": {"m": entry(price=3)}},
            "pricing.overrides.openai.m.price: unknown field (allowed: input, output,",
        ),
        (
            {"openai": {"m": entry(aliases="x")}},
            "pricing.overrides.openai.m.aliases: expected a list of model ids",
        ),
        (
            {"openai": {"m": entry(aliases=["gpt-4o"])}},
            "pricing.openai.m.aliases: 'gpt-4o' is the id of another entry",
        ),
        (
            {"openai": {"m": entry(aliases=["x"]), "n": entry(aliases=["x"])}},
            "pricing.openai.n.aliases: 'x' is already an alias of 'm'",
        ),
        (
            {"gemini": {"m": entry(long_context={"input": 1, "output": 2})}},
            "pricing.overrides.gemini.m.long_context.above_tokens: expected a token count >= 1, "
            "got None",
        ),
        (
            {"gemini": {"m": entry(long_context={"above_tokens": 10, "input": 1})}},
            "pricing.overrides.gemini.m.long_context.output: required",
        ),
    ],
)
def test_a_mistake_is_reported_with_its_field_path(overrides: Any, problem: str) -> None:
    found = problems_of(overrides=overrides)
    assert any(p.startswith(problem) for p in found), found


def test_every_mistake_is_reported_at_once() -> None:
    found = problems_of(overrides={"openai": {"a": entry(input=-1), "b": entry(as_of=None)}})
    assert [p.split(":")[0] for p in found] == [
        "pricing.overrides.openai.a.input",
        "pricing.overrides.openai.b.as_of",
    ]


def test_an_operator_file_is_named_in_its_problems(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("openai: [unclosed\n")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("openai:\n  m: {input: 1}\n")
    assert problems_of(extra_file=str(tmp_path / "missing.yaml")) == [
        f"{tmp_path / 'missing.yaml'}: cannot read the file: No such file or directory"
    ]
    assert problems_of(extra_file=str(broken))[0].startswith(f"{broken}: not valid YAML at line")
    assert f"{wrong}.openai.m.output: required (US dollars per million tokens)" in problems_of(
        extra_file=str(wrong)
    )


# --- cost -------------------------------------------------------------------------------------


def test_openai_usage_charges_cached_prompt_tokens_once_at_their_rate(
    table: PricingTable,
) -> None:
    """prompt_tokens includes the cached part: 6,000 fresh, 4,000 cached, 1,000 out."""
    usage = openai.read_usage(
        {
            "usage": {
                "prompt_tokens": 10_000,
                "completion_tokens": 1_000,
                "prompt_tokens_details": {"cached_tokens": 4_000},
                "completion_tokens_details": {"reasoning_tokens": 600},
            }
        }
    )
    assert usage is not None
    price = table.price("openai", "gpt-4o")
    assert price is not None
    assert cost_nanos(price, usage) == nanos(6_000 * 2.5e-6 + 4_000 * 1.25e-6 + 1_000 * 10e-6)
    assert cost(price, usage) == 0.03


def test_anthropic_usage_charges_reads_writes_and_fresh_input_separately(
    table: PricingTable,
) -> None:
    """Anthropic's input_tokens excludes the cache; the neutral count adds it back."""
    usage = anthropic.usage_of(
        {
            "input_tokens": 2_000,
            "cache_read_input_tokens": 50_000,
            "cache_creation_input_tokens": 10_000,
            "output_tokens": 500,
        }
    )
    price = table.price("anthropic", "claude-sonnet-4-5-20250929")
    assert price is not None
    # 2,000 x $3 + 50,000 x $0.30 + 10,000 x $3.75 + 500 x $15, per million
    assert cost(price, usage) == 0.066


def test_bedrock_usage_is_priced_like_anthropic(table: PricingTable) -> None:
    usage = bedrock_usage(
        {
            "inputTokens": 2_000,
            "cacheReadInputTokens": 50_000,
            "cacheWriteInputTokens": 10_000,
            "outputTokens": 500,
        }
    )
    price = table.price("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert price is not None and usage is not None
    assert cost(price, usage) == 0.066


def test_cache_tokens_without_their_own_rate_are_charged_as_input(table: PricingTable) -> None:
    price = table.price("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0")
    assert price is not None
    cached = Usage(input_tokens=1_000, cached_tokens=400, cache_write_tokens=100)
    assert cost(price, cached) == cost(price, Usage(input_tokens=1_000)) == 0.006


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (200_000, 200_000 * 1.25e-6 + 1_000 * 10e-6),  # at the threshold: base rates
        (200_001, 200_001 * 2.50e-6 + 1_000 * 15e-6),  # over it: the whole request
    ],
)
def test_a_long_prompt_prices_the_whole_request_at_the_long_context_rates(
    table: PricingTable, prompt: int, expected: float
) -> None:
    price = table.price("gemini", "gemini-2.5-pro")
    assert price is not None
    assert cost_nanos(price, Usage(input_tokens=prompt, output_tokens=1_000)) == nanos(expected)


def test_a_cost_is_rounded_once_to_the_nearest_nano_dollar(table: PricingTable) -> None:
    price = table.price("bedrock", "amazon.nova-micro-v1:0")
    assert price is not None
    # one cached token at $0.00875 per million is 8.75 nano-dollars
    assert cost_nanos(price, Usage(input_tokens=1, cached_tokens=1)) == 9
    assert cost_nanos(price, Usage(input_tokens=4, cached_tokens=4)) == 35


def test_a_million_small_costs_add_up_without_drift(table: PricingTable) -> None:
    """7 prompt tokens of gpt-4o-mini cost $0.00000105; a million of them exactly $1.05."""
    price = table.price("openai", "gpt-4o-mini")
    assert price is not None
    usage = Usage(input_tokens=7)
    spent = 0
    for _ in range(1_000_000):
        spent += nanos(cost(price, usage))
    assert spent == 1_050_000_000
    assert spent / NANOS_PER_USD == 1.05
