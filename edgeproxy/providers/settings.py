"""A provider's configuration, declared once (`edgeproxy.config_spec`), and the shape of the
rules each kind of provider sets on it (`KindRules`: the fields only it accepts, its default
base URL, what counts as its credentials). Each adapter module states its kind's rules
(`Provider.rules`); `edgeproxy.providers` collects them and `edgeproxy.config` applies them.

A leaf: the adapters import it, and it imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from edgeproxy.config_reader import Reader, Secret
from edgeproxy.config_spec import (
    COUNT,
    DURATION,
    NONEMPTY_TEXT,
    POSITIVE_DURATION,
    READABLE_FILE,
    STRING_MAP,
    TEXT,
    WHOLE,
    Declared,
    Kind,
    any_case,
    choice,
    read,
    required,
    secret,
    section,
    setting,
    url,
    yaml_only,
)

KIND_NAMES = ("openai", "azure", "anthropic", "gemini", "bedrock", "mock")
OPENAI_URL = "https://api.openai.com"
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_AZURE_API_VERSION = "2024-10-21"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Upstream deadlines in seconds. `total` bounds a whole exchange; None means unbounded."""

    connect: float = setting(5.0, POSITIVE_DURATION, "Connecting (TCP and TLS).")
    first_byte: float = setting(120.0, POSITIVE_DURATION, "Until the response headers arrive.")
    idle: float = setting(60.0, POSITIVE_DURATION, "The longest gap between stream chunks.")
    total: float | None = setting(
        600.0,
        POSITIVE_DURATION,
        "The whole exchange (null: unbounded). A timeout before the response starts is a "
        "504; after a stream started, a final SSE error event.",
        nullable=True,
    )


@dataclass(frozen=True, slots=True)
class MockSettings:
    """How the built-in mock provider answers: deterministic, offline, with usage."""

    reply: str = setting(
        "Hello from edgeproxy's mock provider. It answers without any network access.",
        NONEMPTY_TEXT,
        "The text of every answer.",
    )
    latency: float = setting(0.0, DURATION, "Wait before the first byte.")
    chunk_interval: float = setting(0.0, DURATION, "Wait between stream chunks.")
    stream_chunks: int = setting(8, COUNT, "Chunks a streamed answer is cut into.")
    prompt_tokens: int | None = setting(
        None, WHOLE, "Prompt tokens reported (null: estimated from the text).", example=12
    )
    completion_tokens: int | None = setting(
        None, WHOLE, "Completion tokens reported (null: estimated from the text).", example=20
    )
    embedding_dims: int = setting(16, COUNT, "Size of the vectors it embeds into.")


def _aws(r: Reader, raw: Any, path: str) -> AwsSettings:
    """Bedrock's section: the region from the environment when not given, and keys in pairs."""
    settings = read(r, AwsSettings, raw, path)
    region = settings.region or r.env.get("AWS_REGION") or r.env.get("AWS_DEFAULT_REGION") or ""
    if not region:
        r.fail(f"{path}.region", "required (or set AWS_REGION in the environment)")
    if (settings.access_key_id is None) != (settings.secret_access_key is None):
        r.fail(path, "give access_key_id and secret_access_key together, or neither")
    return replace(settings, region=region)


@dataclass(frozen=True, slots=True)
class AwsSettings:
    """Bedrock's region and credentials; keys left out come from the standard AWS chain."""

    region: str = setting(
        "", NONEMPTY_TEXT, "The AWS region.", example="us-east-1", shown="$AWS_REGION"
    )
    access_key_id: str | None = setting(
        None, NONEMPTY_TEXT, "With secret_access_key; left out: the AWS chain.", example="AKIA..."
    )
    secret_access_key: Secret | None = secret("The secret of access_key_id.")
    session_token: Secret | None = secret("A temporary session's token.")


def _switch(r: Reader, path: str, value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return r.choice(("true", "false", "auto"))(path, value)


_SWITCH = Kind(
    _switch,
    {"anyOf": [{"type": "boolean"}, *any_case(("true", "false", "auto"))["anyOf"]]},
    "true | false | auto",
    "auto",
)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    YAML_ONLY: ClassVar[tuple[Declared, ...]] = (
        yaml_only(
            "enabled",
            "true",
            _SWITCH,
            "true (missing credentials are an error), false, or auto (on only when its "
            "credentials resolve).",
        ),
    )

    name: str
    kind: str = required(
        choice(KIND_NAMES),
        "openai (and any OpenAI-compatible server, by base_url), azure (Azure OpenAI), "
        "anthropic, gemini (Google AI), bedrock (AWS Bedrock Runtime) or mock. A client may "
        "speak OpenAI or Anthropic to any kind: what differs is translated.",
        example="openai",
    )
    base_url: str = setting(
        "",
        url(base=True),
        "OpenAI-style URLs include /v1; Anthropic's do not; azure: "
        "https://<resource>.openai.azure.com (required). Defaults: each kind's public API "
        "(bedrock: its region's endpoint).",
        example="https://api.openai.com/v1",
        shown="per kind",
    )
    api_key: Secret | None = secret(
        "Usually ${SOME_ENV}, or api_key_file for a mounted secret. The client's own key is "
        "never sent upstream: this one is.",
        example="${OPENAI_API_KEY}",
    )
    headers: Mapping[str, str] = setting(
        {}, STRING_MAP, "Extra static headers sent upstream on every request."
    )
    max_connections: int = setting(100, COUNT, "Size of its keep-alive connection pool.")
    timeouts: Timeouts = section(Timeouts, "Upstream deadlines.")
    # Egress: the HTTP proxy requests go through (CONNECT for https), None to go direct; a CA
    # bundle trusted instead of the system's; how long an idle pooled connection is kept; how
    # long a resolved address is.
    proxy: str | None = setting(
        None,
        TEXT,
        "The HTTP proxy to reach it through, http://[user:pass@]host:port (left out: "
        "HTTPS_PROXY, HTTP_PROXY and NO_PROXY decide; none: direct).",
        example="http://proxy.internal:3128",
    )
    ca_file: str | None = setting(
        None, READABLE_FILE, "A PEM bundle of CAs trusted instead of the system's."
    )
    keepalive_timeout: float = setting(
        15.0, POSITIVE_DURATION, "How long an idle pooled connection is kept."
    )
    dns_ttl: float = setting(60.0, DURATION, "How long a resolved address is reused.")
    anthropic_version: str = setting(
        DEFAULT_ANTHROPIC_VERSION,
        NONEMPTY_TEXT,
        "anthropic: sent when the client sends no anthropic-version of its own.",
    )
    default_max_tokens: int = setting(
        4096, COUNT, "anthropic: max_tokens sent when an OpenAI client gave none."
    )
    max_tokens_field: str = setting(
        "max_tokens",
        choice(("max_tokens", "max_completion_tokens")),
        "openai, azure: the field a translated request uses (default max_completion_tokens "
        "for api.openai.com and azure, max_tokens for other OpenAI-compatible servers).",
        shown="per kind and base_url",
    )
    api_version: str = setting(
        DEFAULT_AZURE_API_VERSION,
        NONEMPTY_TEXT,
        "azure: the api-version of deployment URLs, or v1 for Azure's v1 API.",
    )
    bearer_token: Secret | None = secret(
        "azure: a Microsoft Entra ID token instead of api_key.", example="${AZURE_TOKEN}"
    )
    aws: AwsSettings = section(AwsSettings, "bedrock: region and credentials.", parse=_aws)
    mock: MockSettings = section(MockSettings, "mock: how the mock answers.")


@dataclass(frozen=True, slots=True)
class Given:
    """What a provider entry says, as far as its kind's credential rule needs: the raw
    mapping, whether an api_key or bearer_token resolved, and the environment."""

    raw: Mapping[str, Any]
    has_key: bool
    has_token: bool
    env: Mapping[str, str]


def _api_key(given: Given) -> bool:
    return given.has_key


@dataclass(frozen=True, slots=True)
class KindRules:
    """What one kind asks of its configuration. `fields`: the kind-specific fields it
    accepts; `base_url`: its default, from the fields read (bedrock: its region; "" where the
    operator must give one, as `required_url` says); `authenticated`: whether its credentials
    resolve, and `missing` the field and message when they do not; `dns_name`: its base URL's
    host must be a DNS name; `newer_max_tokens`: it takes `max_completion_tokens` wherever it
    is served; `check`: its own further rules on the fields read."""

    base_url: Callable[[Mapping[str, Any]], str]
    fields: frozenset[str] = frozenset()
    authenticated: Callable[[Given], bool] = _api_key
    missing: tuple[str, str] = ("api_key", "required for this kind (give api_key or api_key_file)")
    required_url: str | None = None
    dns_name: bool = False
    newer_max_tokens: bool = False
    check: Callable[[Reader, Mapping[str, Any], str], None] | None = None

    def max_tokens_field(self, base_url: str) -> str:
        """The field a translated request carries its limit in: OpenAI's newer name for its
        own API and Azure, the classic one for other OpenAI-compatible servers."""
        official = self.newer_max_tokens or base_url.startswith(OPENAI_URL)
        return "max_completion_tokens" if official else "max_tokens"


def fixed_url(url: str) -> Callable[[Mapping[str, Any]], str]:
    """A kind's default base URL that depends on nothing else."""
    return lambda values: url
