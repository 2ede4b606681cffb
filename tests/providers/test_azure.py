"""Azure OpenAI: which URL a request goes to and which credential header it carries."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.config import parse
from edgeproxy.config_reader import ConfigError
from edgeproxy.operations import Operation
from edgeproxy.providers.azure import AzureProvider
from edgeproxy.providers.base import OutboundRequest

BASE = "https://contoso.openai.azure.com"


def provider(**settings: Any) -> AzureProvider:
    raw = {
        "providers": {"az": {"kind": "azure", "base_url": BASE, **settings}},
        "models": {"m": {"deployments": [{"provider": "az", "model": "gpt-4o-prod"}]}},
    }
    return AzureProvider(parse(raw, {}).providers["az"])


def outbound(operation: Operation, model: str = "gpt-4o-prod") -> OutboundRequest:
    return OutboundRequest(
        request_id="req-1",
        operation=operation,
        model=model,
        body=b"{}",
        stream=False,
        client_headers={},
        payload={},
        neutral=None,
        deadline=None,
    )


@pytest.mark.parametrize(
    ("operation", "url"),
    [
        (
            Operation.CHAT,
            f"{BASE}/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21",
        ),
        (
            Operation.EMBEDDINGS,
            f"{BASE}/openai/deployments/gpt-4o-prod/embeddings?api-version=2024-10-21",
        ),
        (  # an Anthropic client's request, translated, goes to the chat endpoint
            Operation.MESSAGES,
            f"{BASE}/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21",
        ),
    ],
)
def test_deployment_urls_name_the_deployment_and_the_api_version(
    operation: Operation, url: str
) -> None:
    assert provider(api_key="k").url_for(outbound(operation)) == url


def test_v1_api_urls_carry_no_deployment_and_no_version() -> None:
    azure = provider(api_key="k", api_version="v1")
    assert azure.url_for(outbound(Operation.CHAT)) == f"{BASE}/openai/v1/chat/completions"
    assert azure.url_for(outbound(Operation.MESSAGES)) == f"{BASE}/openai/v1/chat/completions"


def test_the_responses_api_has_one_url_per_resource_the_deployment_in_the_body() -> None:
    classic = provider(api_key="k", api_version="2025-04-01-preview")
    expected = f"{BASE}/openai/responses?api-version=2025-04-01-preview"
    assert classic.url_for(outbound(Operation.RESPONSES)) == expected
    v1 = provider(api_key="k", api_version="v1")
    assert v1.url_for(outbound(Operation.RESPONSES)) == f"{BASE}/openai/v1/responses"


def test_a_deployment_name_is_escaped_in_the_path() -> None:
    url = provider(api_key="k").url_for(outbound(Operation.CHAT, "a/b c"))
    assert "/deployments/a%2Fb%20c/chat/completions" in url


@pytest.mark.parametrize(
    ("settings", "headers"),
    [
        ({"api_key": "azure-key-123"}, {"api-key": "azure-key-123"}),
        ({"bearer_token": "entra-token-456"}, {"authorization": "Bearer entra-token-456"}),
    ],
)
def test_the_credential_is_an_api_key_header_or_an_entra_bearer_token(
    settings: dict[str, str], headers: dict[str, str]
) -> None:
    assert provider(**settings).auth_headers() == headers


def test_an_azure_provider_without_a_credential_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"providers\.az\.api_key"):
        provider()


@pytest.mark.parametrize(
    ("api_version", "query", "url"),
    [
        (
            "2025-04-01-preview",
            "include%5B%5D=x&api-version=1999-01-01",
            f"{BASE}/openai/responses/resp_1?api-version=2025-04-01-preview&include%5B%5D=x",
        ),
        (
            "2025-04-01-preview",
            "",
            f"{BASE}/openai/responses/resp_1?api-version=2025-04-01-preview",
        ),
        ("v1", "stream=true", f"{BASE}/openai/v1/responses/resp_1?stream=true"),
    ],
)
def test_forwarded_paths_are_under_the_resource_with_its_own_api_version(
    api_version: str, query: str, url: str
) -> None:
    forwarded = provider(api_key="k", api_version=api_version)
    assert forwarded.api_url("/v1/responses/resp_1", query) == url
