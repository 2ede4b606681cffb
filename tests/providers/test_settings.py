"""Each kind of provider states what it asks of its configuration (`Provider.rules`), and the
loader holds every provider entry to its kind's rules."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.config import Config, parse
from edgeproxy.config_reader import ConfigError
from edgeproxy.providers import KIND_FIELDS, RULES
from edgeproxy.providers.settings import KIND_NAMES

AWS = {"region": "us-east-1", "access_key_id": "AKIA1", "secret_access_key": "s"}


def with_provider(entry: dict[str, Any], env: dict[str, str] | None = None) -> Config:
    raw = {"providers": {"p": entry, "mock": {"kind": "mock"}}, "models": {}}
    return parse(raw, env or {})


def problems_of(entry: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        with_provider(entry, env)
    return caught.value.problems


def test_every_kind_has_an_adapter_stating_its_rules() -> None:
    assert tuple(RULES) == KIND_NAMES
    assert KIND_FIELDS["max_tokens_field"] == ("openai", "azure")


@pytest.mark.parametrize(
    ("entry", "base_url"),
    [
        ({"kind": "openai", "api_key": "k"}, "https://api.openai.com/v1"),
        ({"kind": "anthropic", "api_key": "k"}, "https://api.anthropic.com"),
        ({"kind": "gemini", "api_key": "k"}, "https://generativelanguage.googleapis.com/v1beta"),
        ({"kind": "bedrock", "aws": AWS}, "https://bedrock-runtime.us-east-1.amazonaws.com"),
        ({"kind": "mock"}, "http://mock.invalid"),
    ],
)
def test_each_kind_has_its_default_base_url(entry: dict[str, Any], base_url: str) -> None:
    assert with_provider(entry).providers["p"].base_url == base_url


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"kind": "openai", "api_key": "k"}, "max_completion_tokens"),
        ({"kind": "openai", "base_url": "http://vllm:8000/v1"}, "max_tokens"),
        ({"kind": "azure", "api_key": "k", "base_url": "https://r.openai.azure.com"}, None),
    ],
)
def test_the_max_tokens_field_follows_the_kind_and_the_server(
    entry: dict[str, Any], field: str | None
) -> None:
    expected = field or "max_completion_tokens"
    assert with_provider(entry).providers["p"].max_tokens_field == expected


@pytest.mark.parametrize(
    ("entry", "env", "expected"),
    [
        (
            {"kind": "openai", "api_key": "k", "anthropic_version": "2023-06-01"},
            {},
            "providers.p.anthropic_version: only applies to kind anthropic",
        ),
        (
            {"kind": "anthropic", "api_key": "k", "aws": AWS},
            {},
            "providers.p.aws: only applies to kind bedrock",
        ),
        (
            {"kind": "gemini", "api_key": "k", "max_tokens_field": "max_tokens"},
            {},
            "providers.p.max_tokens_field: only applies to kind openai or azure",
        ),
        (
            {"kind": "azure", "api_key": "k"},
            {},
            "providers.p.base_url: required for kind azure",
        ),
        (
            {"kind": "azure", "base_url": "https://r.openai.azure.com"},
            {},
            "providers.p.api_key: required for this kind (give api_key, api_key_file or "
            "bearer_token)",
        ),
        (
            {"kind": "anthropic"},
            {},
            "providers.p.api_key: required for this kind (give api_key or api_key_file)",
        ),
        (
            {"kind": "bedrock", "aws": {**AWS, "region": "us east"}},
            {},
            "providers.p.aws.region: expected an AWS region such as us-east-1",
        ),
        (
            {"kind": "bedrock", "aws": {"access_key_id": "AKIA1", "secret_access_key": "s"}},
            {},
            "providers.p.aws.region: required (or set AWS_REGION in the environment)",
        ),
        (
            {"kind": "bedrock", "aws": {"region": "us-east-1", "access_key_id": "AKIA1"}},
            {},
            "providers.p.aws: give access_key_id and secret_access_key together, or neither",
        ),
    ],
)
def test_a_kind_refuses_what_it_does_not_accept(
    entry: dict[str, Any], env: dict[str, str], expected: str
) -> None:
    found = problems_of(entry, env)
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize(
    "entry",
    [
        {"kind": "openai", "base_url": "http://ollama:11434/v1"},
        {"kind": "azure", "base_url": "https://r.openai.azure.com", "bearer_token": "t"},
        {"kind": "bedrock", "aws": {"region": "eu-west-1"}},
    ],
)
def test_a_kind_takes_the_credentials_it_may_go_without_or_get_elsewhere(
    entry: dict[str, Any],
) -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIA2", "AWS_SECRET_ACCESS_KEY": "s2"}
    assert "p" in with_provider(entry, env).providers


@pytest.mark.parametrize("switch", [False, "false"])
def test_a_provider_switched_off_is_dropped_whichever_way_it_is_written(switch: Any) -> None:
    config = with_provider({"kind": "openai", "enabled": switch})
    assert config.disabled_providers == ("p",)


def test_a_bedrock_region_comes_from_the_environment() -> None:
    entry = {"kind": "bedrock", "aws": {"access_key_id": "AKIA1", "secret_access_key": "s"}}
    config = with_provider(entry, {"AWS_REGION": "eu-central-1"})
    assert config.providers["p"].aws.region == "eu-central-1"
