"""Upstream URLs come only from the config and are checked at load: every refusal names the
field it comes from (the forms themselves: tests/wire/test_urls.py)."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.config import ConfigError, parse


def problems(provider: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    raw = {
        "providers": {"up": {"api_key": "k", **provider}},
        "models": {"m": {"deployments": [{"provider": "up"}]}},
    }
    try:
        parse(raw, env or {})
    except ConfigError as err:
        return err.problems
    return []


@pytest.mark.parametrize(
    ("provider", "field", "problem"),
    [
        (
            {"kind": "openai", "base_url": "https://api.openai.com@127.0.0.1/v1"},
            "providers.up.base_url",
            "credentials",
        ),
        (
            {"kind": "anthropic", "base_url": "https://api.anthropic.com#.evil"},
            "providers.up.base_url",
            "fragment",
        ),
        (
            {"kind": "gemini", "base_url": "https://generativelanguage.googleapis.com/v1beta?k=1"},
            "providers.up.base_url",
            "query string",
        ),
        (  # Portkey #1596: an Azure resource name with a `#` sent requests elsewhere
            {"kind": "azure", "base_url": "https://contoso#.evil.example.openai.azure.com"},
            "providers.up.base_url",
            "fragment",
        ),
        (
            {"kind": "azure", "base_url": "https://contoso_eu.openai.azure.com"},
            "providers.up.base_url",
            "DNS name",
        ),
        (
            {"kind": "azure", "base_url": "https://[::1]:8443"},
            "providers.up.base_url",
            "DNS name",
        ),
        (
            {"kind": "openai", "base_url": "https://llm.example/v1", "proxy": "http://e:1/x"},
            "providers.up.proxy",
            "nothing after it",
        ),
        (
            {"kind": "bedrock", "aws": {"region": "us-east-1.evil.example#"}},
            "providers.up.aws.region",
            "AWS region",
        ),
    ],
)
def test_a_refused_upstream_url_names_its_field(
    provider: dict[str, Any], field: str, problem: str
) -> None:
    found = problems(provider)
    assert any(p.startswith(f"{field}: ") and problem in p for p in found), found


def test_an_upstream_url_from_the_environment_is_checked_after_substitution() -> None:
    found = problems(
        {"kind": "openai", "base_url": "${LLM_URL}"}, {"LLM_URL": "http://user@llm.example/v1"}
    )
    assert found == [
        "providers.up.base_url: has credentials in it (user:password@...); "
        "give them as a key or headers"
    ]


def test_a_proxy_from_the_environment_is_checked_and_named_as_such() -> None:
    found = problems(
        {"kind": "openai", "base_url": "https://llm.example/v1"},
        {"HTTPS_PROXY": "http://egress:3128#@evil"},
    )
    assert found == [
        "providers.up (proxy from the environment): has a fragment (#...), which cuts the URL short"
    ]


def test_a_refusal_does_not_repeat_credentials_it_was_given() -> None:
    found = problems({"kind": "openai", "base_url": "ftp://user:hunter2-pass@llm.example"})
    assert found and not any("hunter2" in p for p in found)
