"""What each kind of provider asks of its configuration: the fields only it accepts, its
default base URL, what counts as its credentials and what to say when they are missing.

A leaf (no adapter imports it, it imports no adapter) so that `edgeproxy.config` reads
providers by these rules without importing the adapters, which import the configuration.
Adding a kind means a `KindRules` here and an adapter in `edgeproxy/providers/`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

from edgeproxy.wire.urls import url_problem

OPENAI_URL = "https://api.openai.com"
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_AZURE_API_VERSION = "2024-10-21"


@dataclass(frozen=True, slots=True)
class Given:
    """What a provider entry says, as far as its kind's rules need: the raw mapping, whether
    an api_key or bearer_token resolved, and the environment."""

    raw: Mapping[str, Any]
    has_key: bool
    has_token: bool
    env: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class KindRules:
    """One kind's rules. `fields`: the kind-specific fields it accepts; `base_url`: its
    default (from the region for bedrock; "" when the operator must give one, as azure's
    `required_url` says); `authenticated`: whether its credentials resolve; `missing`: the
    field and message when they do not; `dns_name`: its base URL's host must be a DNS name;
    `newer_max_tokens`: it takes `max_completion_tokens` wherever it is served."""

    fields: frozenset[str]
    base_url: Callable[[str], str]
    authenticated: Callable[[Given], bool]
    missing: tuple[str, str] = ("api_key", "required for this kind (give api_key or api_key_file)")
    required_url: str | None = None
    dns_name: bool = False
    newer_max_tokens: bool = False

    def max_tokens_field(self, base_url: str) -> str:
        """The field a translated request carries its limit in: OpenAI's newer name for its
        own API and Azure, the classic one for other OpenAI-compatible servers."""
        official = self.newer_max_tokens or base_url.startswith(OPENAI_URL)
        return "max_completion_tokens" if official else "max_tokens"


def aws_chain_available(env: Mapping[str, str]) -> bool:
    """Whether credentials can come from outside the config: the environment, or botocore's
    standard chain (IRSA web identity, profiles, instance roles) when the extra is installed."""
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return True
    return find_spec("botocore") is not None


def _openai_authenticated(given: Given) -> bool:
    """A self-hosted OpenAI-compatible server (another base URL) may need no key."""
    return given.has_key or not str(given.raw.get("base_url", OPENAI_URL)).startswith(OPENAI_URL)


def _bedrock_authenticated(given: Given) -> bool:
    aws = given.raw.get("aws")
    return (isinstance(aws, dict) and bool(aws.get("access_key_id"))) or aws_chain_available(
        given.env
    )


def _fixed(url: str) -> Callable[[str], str]:
    return lambda region: url


KINDS: dict[str, KindRules] = {
    "openai": KindRules(
        frozenset({"max_tokens_field"}), _fixed(OPENAI_URL + "/v1"), _openai_authenticated
    ),
    "azure": KindRules(
        frozenset({"max_tokens_field", "api_version", "bearer_token", "bearer_token_file"}),
        _fixed(""),
        lambda given: given.has_key or given.has_token,
        ("api_key", "required for this kind (give api_key, api_key_file or bearer_token)"),
        required_url="required for kind azure (https://<resource>.openai.azure.com)",
        dns_name=True,
        newer_max_tokens=True,
    ),
    "anthropic": KindRules(
        frozenset({"anthropic_version", "default_max_tokens"}),
        _fixed("https://api.anthropic.com"),
        lambda given: given.has_key,
    ),
    "gemini": KindRules(
        frozenset(),
        _fixed("https://generativelanguage.googleapis.com/v1beta"),
        lambda given: given.has_key,
    ),
    "bedrock": KindRules(
        frozenset({"aws"}),
        lambda region: f"https://bedrock-runtime.{region}.amazonaws.com",
        _bedrock_authenticated,
        (
            "aws",
            "no AWS credentials: give aws.access_key_id and aws.secret_access_key, set "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or install edgeproxy[bedrock] for the "
            "standard AWS chain (IRSA, profiles, instance roles)",
        ),
    ),
    "mock": KindRules(frozenset({"mock"}), _fixed("http://mock.invalid"), lambda given: True),
}
KIND_NAMES = tuple(KINDS)


def kinds_accepting(key: str) -> tuple[str, ...]:
    """The kinds a kind-specific field applies to (empty: a field every kind accepts)."""
    return tuple(name for name, rules in KINDS.items() if key in rules.fields)


def region_problem(region: str) -> str | None:
    """Whether `region` makes a valid Bedrock endpoint host."""
    if region and url_problem(KINDS["bedrock"].base_url(region), dns_name=True):
        return f"expected an AWS region such as us-east-1, got {region!r}"
    return None
