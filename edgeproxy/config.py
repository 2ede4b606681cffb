"""Configuration: YAML in, frozen typed dataclasses out, every error naming its field path.

`load(path, env)` reads a file (or the embedded defaults), substitutes `${VAR}` and
`${VAR:-default}` from `env` inside string values, reads secrets from files where asked,
validates everything and applies the per-pod overrides `EDGEPROXY_HOST`, `EDGEPROXY_PORT` and
`EDGEPROXY_LOG_LEVEL`. All problems are collected and raised together as a `ConfigError`, so a
process never starts half-configured and an operator sees every mistake in one go.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from edgeproxy.config_reader import HEADER_NAME, ConfigError, FromEnv, Reader, Secret, show
from edgeproxy.security.settings import SECTIONS, SecurityConfig, parse_security
from edgeproxy.telemetry.settings import SECTION as TELEMETRY
from edgeproxy.telemetry.settings import TelemetryConfig, parse_telemetry
from edgeproxy.wire.egress import Proxy, proxy_for
from edgeproxy.wire.urls import proxy_url_problem, url_problem

PROVIDER_KINDS = ("openai", "azure", "anthropic", "gemini", "bedrock", "mock")
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_AZURE_API_VERSION = "2024-10-21"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Upstream deadlines in seconds. `total` bounds a whole exchange; None means unbounded."""

    connect: float = 5.0
    first_byte: float = 120.0
    idle: float = 60.0
    total: float | None = 600.0


@dataclass(frozen=True, slots=True)
class MockSettings:
    """How the built-in mock provider answers: deterministic, offline, with usage."""

    reply: str = "Hello from edgeproxy's mock provider. It answers without any network access."
    latency: float = 0.0
    chunk_interval: float = 0.0
    stream_chunks: int = 8
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    embedding_dims: int = 16


@dataclass(frozen=True, slots=True)
class AwsSettings:
    """Bedrock's region and credentials; keys left out come from the standard AWS chain."""

    region: str = ""
    access_key_id: str | None = None
    secret_access_key: Secret | None = None
    session_token: Secret | None = None


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    kind: str
    base_url: str
    api_key: Secret | None
    headers: Mapping[str, str]
    max_connections: int
    timeouts: Timeouts
    # Egress: the HTTP proxy requests go through (CONNECT for https), None to go direct; a CA
    # bundle trusted instead of the system's; how long an idle pooled connection is kept; how
    # long a resolved address is.
    proxy: str | None = None
    ca_file: str | None = None
    keepalive_timeout: float = 15.0
    dns_ttl: float = 60.0
    anthropic_version: str = DEFAULT_ANTHROPIC_VERSION
    default_max_tokens: int = 4096
    max_tokens_field: str = "max_tokens"
    api_version: str = DEFAULT_AZURE_API_VERSION
    bearer_token: Secret | None = None
    aws: AwsSettings = field(default_factory=AwsSettings)
    mock: MockSettings = field(default_factory=MockSettings)


@dataclass(frozen=True, slots=True)
class Price:
    """What a deployment costs, in US dollars per million tokens."""

    input: float
    output: float

    def estimate(self, input_tokens: int, output_tokens: int) -> float:
        return (self.input * input_tokens + self.output * output_tokens) / 1_000_000


# What a deployment can be asked to do; a deployment that lists none is assumed to do all.
CAPABILITIES = ("vision", "tools", "json", "streaming")


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    """One place a model is served: `model` None forwards the name the client asked for.

    `name` identifies the deployment (default `provider/model`): deployments of the same name
    in several groups share one breaker, health record and set of local limits.
    """

    provider: str
    model: str | None
    weight: float = 1.0
    name: str = ""
    price: Price | None = None
    context_window: int | None = None
    capabilities: frozenset[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_in_flight: int | None = None


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a deployment's circuit opens, and how it is probed before it closes again.

    It opens after `failure_threshold` consecutive failures, or when at least `min_requests`
    calls in the last `window` seconds failed at `error_rate` or more; it stays open for
    `reset_timeout` (or the provider's longer retry-after), then admits `half_open_requests`
    probes: that many successes close it, one failure opens it again.
    """

    failure_threshold: int = 5
    error_rate: float = 0.5
    min_requests: int = 20
    window: float = 30.0
    reset_timeout: float = 60.0
    half_open_requests: int = 3


# 401 and 403 too: the proxy sends its own key, never the client's, so an upstream refusing it
# is that deployment's fault (a revoked key, a region it may not serve), and another may answer.
RETRY_STATUSES = frozenset({401, 403, 408, 429, 500, 502, 503, 504, 529})


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """How a model group retries (a failed attempt moves to another deployment when one is
    available, else waits and tries the same one again).

    `max_attempts` counts every upstream attempt a group makes for one request. Waits on the
    same deployment are exponential with full jitter (`backoff_base` doubling up to
    `backoff_max`) or the provider's retry-after when longer, never beyond `max_wait` nor the
    request's deadline. The budget lets retries in flight be at most `budget_ratio` of the
    requests in flight (and always `budget_min` of them), as Envoy's retry budget.
    """

    max_attempts: int = 3
    backoff_base: float = 0.1
    backoff_max: float = 5.0
    max_wait: float = 30.0
    budget_ratio: float = 0.2
    budget_min: int = 3
    on_status: frozenset[int] = RETRY_STATUSES


@dataclass(frozen=True, slots=True)
class HybridWeights:
    """The `hybrid` strategy's score: cost·(1 - cost/max) + latency·(1 - ttfb/max) +
    reliability·success_rate + quality·feedback_quality (0 by default: the apps' feedback
    steers routing only where an operator asks it to)."""

    cost: float = 0.4
    latency: float = 0.4
    reliability: float = 0.2
    quality: float = 0.0


STRATEGIES = ("weighted", "latency", "cost", "hybrid")


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """Defaults for every model group, and the settings that belong to deployments."""

    strategy: str = "weighted"
    exploration: float = 0.05
    hybrid: HybridWeights = field(default_factory=HybridWeights)
    retry: RetrySettings = field(default_factory=RetrySettings)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """A public model name (or a `*` glob such as `claude-*`) and where it is served.

    `unsupported_params` says what a cross-dialect route does with a request field the
    provider cannot express: `drop` it (named in `x-edgeproxy-dropped-params`) or `reject`.
    """

    name: str
    deployments: tuple[DeploymentConfig, ...]
    unsupported_params: Literal["drop", "reject"] = "drop"
    aliases: tuple[str, ...] = ()
    strategy: str = "weighted"
    fallbacks: tuple[str, ...] = ()
    context_fallbacks: tuple[str, ...] = ()
    retry: RetrySettings = field(default_factory=RetrySettings)
    hedge_after: float | None = None
    cache: bool = True
    cache_ttl: float | None = None
    cache_semantic: bool = False

    @property
    def is_pattern(self) -> bool:
        return "*" in self.name or "?" in self.name


@dataclass(frozen=True, slots=True)
class CacheKeySettings:
    """What makes two requests the same question (see edgeproxy/cache/keys.py).

    Every request field is part of the key except the ones that cannot change the answer
    (`stream`, `user`, `metadata`...); `exclude` leaves more out, `include` puts default
    exclusions back. `case_insensitive` folds the case of message text. Clients of the two
    dialects share entries only with `share_across_dialects` (the key is then taken over the
    neutral form of the request). `headers` names the request headers that change answers
    (sent upstream, read by the provider): their values are part of the key too.
    """

    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    case_insensitive: bool = False
    share_across_dialects: bool = False
    headers: tuple[str, ...] = ("anthropic-beta",)  # lower case, sorted


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """The shared L2 cache: one Redis (`url`) or a Redis Cluster (`cluster_nodes`)."""

    url: str | None = None
    cluster_nodes: tuple[str, ...] = ()
    prefix: str = "edgeproxy"
    timeout: float = 0.05
    connect_timeout: float = 0.5
    compress_over: int = 4096
    failure_threshold: int = 3
    reset_timeout: float = 5.0
    password: Secret | None = None

    @property
    def enabled(self) -> bool:
        return self.url is not None or bool(self.cluster_nodes)


@dataclass(frozen=True, slots=True)
class SemanticSettings:
    """The semantic layer, for the groups that opt in (`cache: {semantic: true}`).

    `shadow` (the default) answers as usual and counts would-be hits, so precision can be
    measured before `serve` answers from them. A match needs cosine >= `threshold` and the
    lexical guard; embedding the question may take `budget` at most (else the layer is
    skipped); questions longer than `max_chars` are not embedded.
    """

    mode: Literal["shadow", "serve"] = "shadow"
    threshold: float = 0.95
    budget: float = 0.05
    max_chars: int = 1000
    embedder: str = "local"  # or the name of an embeddings model group of this proxy
    dims: int | None = None  # that group's vector size (required with one)


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """The exact cache: L1 in process (always), L2 in Redis (when configured)."""

    enabled: bool = True
    ttl: float = 3600.0
    max_ttl: float = 86400.0  # the longest any entry lives, whatever a request asks
    namespace: str = "default"
    max_entries: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    max_entry_bytes: int = 4 * 1024 * 1024
    skip_temperature_above: float | None = None
    key: CacheKeySettings = field(default_factory=CacheKeySettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    semantic: SemanticSettings = field(default_factory=SemanticSettings)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The data listener the application talks to, on loopback by default."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 32 * 1024 * 1024
    keepalive_timeout: float = 75.0
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    send_timeout: float = 60.0
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    shutdown_grace: float = 20.0
    drain_delay: float = 5.0
    workers: int = 1
    access_log: bool = False


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """Probes and admin actions, on all interfaces: kubelet and Prometheus reach the pod IP."""

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = 9090
    token: Secret | None = None


@dataclass(frozen=True, slots=True)
class ReloadConfig:
    """Hot reload of the configuration file (a mounted ConfigMap): its directory is checked
    every `interval`, so Kubernetes' `..data` symlink swap is seen; SIGHUP and
    POST /admin/reload reload at once whatever `enabled` says."""

    enabled: bool = True
    interval: float = 2.0


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "info"
    format: Literal["json", "text"] = "json"


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    admin: AdminConfig
    logging: LoggingConfig
    routing: RoutingConfig
    cache: CacheConfig
    providers: Mapping[str, ProviderConfig]
    models: tuple[ModelConfig, ...]
    disabled_providers: tuple[str, ...] = ()
    reload: ReloadConfig = field(default_factory=ReloadConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)

    def secrets(self) -> list[str]:
        """Every credential this configuration holds, for the log formatter to mask: each
        `Secret`, the password of a Redis URL, provider headers that carry credentials, and an
        egress proxy's password (and the Proxy-Authorization value made of it)."""
        found: list[str] = []
        _collect_secrets(self, found)
        urls = (self.cache.redis.url, self.security.redis.url)
        found += (p for url in urls if url and (p := urlsplit(url).password))
        for provider in self.providers.values():
            found += (v for k, v in provider.headers.items() if _CREDENTIAL_HEADER.search(k))
            if provider.proxy and (password := urlsplit(provider.proxy).password):
                found.append(password)
                found.append(Proxy(provider.proxy).authorization or "")
        return found


_CREDENTIAL_HEADER = re.compile(r"auth|key|token|secret|password|cookie", re.IGNORECASE)


def _collect_secrets(value: object, found: list[str]) -> None:
    if isinstance(value, Secret):
        found.append(value.reveal())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            _collect_secrets(getattr(value, item.name), found)
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect_secrets(item, found)
    elif isinstance(value, tuple | list):
        for item in value:
            _collect_secrets(item, found)


# --- sections ---------------------------------------------------------------------------------


def _server(r: Reader, raw: Any) -> ServerConfig:
    s = r.section(
        raw,
        "server",
        (
            "host",
            "port",
            "max_body",
            "keepalive_timeout",
            "header_timeout",
            "body_timeout",
            "send_timeout",
            "max_header_size",
            "max_headers",
            "shutdown_grace",
            "drain_delay",
            "workers",
            "access_log",
        ),
    )
    d = ServerConfig()
    return ServerConfig(
        host=r.get(s, "server", "host", r.nonempty_text, d.host),
        port=r.get(s, "server", "port", r.port, d.port),
        max_body_bytes=r.get(s, "server", "max_body", r.size, d.max_body_bytes),
        keepalive_timeout=r.get(s, "server", "keepalive_timeout", r.duration, d.keepalive_timeout),
        header_timeout=r.get(s, "server", "header_timeout", r.positive_duration, d.header_timeout),
        body_timeout=r.get(s, "server", "body_timeout", r.positive_duration, d.body_timeout),
        send_timeout=r.get(s, "server", "send_timeout", r.positive_duration, d.send_timeout),
        max_header_bytes=r.get(s, "server", "max_header_size", r.size, d.max_header_bytes),
        max_headers=r.get(s, "server", "max_headers", r.count, d.max_headers),
        shutdown_grace=r.get(s, "server", "shutdown_grace", r.duration, d.shutdown_grace),
        drain_delay=r.get(s, "server", "drain_delay", r.duration, d.drain_delay),
        workers=r.get(s, "server", "workers", r.count, d.workers),
        access_log=r.get(s, "server", "access_log", r.boolean, d.access_log),
    )


def _admin(r: Reader, raw: Any) -> AdminConfig:
    s = r.section(raw, "admin", ("enabled", "host", "port", "token", "token_file"))
    d = AdminConfig()
    return AdminConfig(
        enabled=r.get(s, "admin", "enabled", r.boolean, d.enabled),
        host=r.get(s, "admin", "host", r.nonempty_text, d.host),
        port=r.get(s, "admin", "port", r.port, d.port),
        token=r.secret(s, "admin", "token"),
    )


def _reload(r: Reader, raw: Any) -> ReloadConfig:
    s = r.section(raw, "reload", ("enabled", "interval"))
    d = ReloadConfig()
    return ReloadConfig(
        enabled=r.get(s, "reload", "enabled", r.boolean, d.enabled),
        interval=r.get(s, "reload", "interval", r.positive_duration, d.interval),
    )


def _logging(r: Reader, raw: Any) -> LoggingConfig:
    s = r.section(raw, "logging", ("level", "format"))
    d = LoggingConfig()
    fmt = r.get(s, "logging", "format", r.choice(("json", "text")), d.format)
    return LoggingConfig(
        level=r.get(s, "logging", "level", r.choice(LOG_LEVELS), d.level),
        format="text" if fmt == "text" else "json",
    )


def _timeouts(r: Reader, raw: Any, path: str) -> Timeouts:
    s = r.section(raw, path, ("connect", "first_byte", "idle", "total"))
    d = Timeouts()
    total = d.total
    if "total" in s:
        total = None if s["total"] is None else r.get(s, path, "total", r.positive_duration)
    return Timeouts(
        connect=r.get(s, path, "connect", r.positive_duration, d.connect),
        first_byte=r.get(s, path, "first_byte", r.positive_duration, d.first_byte),
        idle=r.get(s, path, "idle", r.positive_duration, d.idle),
        total=total,
    )


def _mock(r: Reader, raw: Any, path: str) -> MockSettings:
    s = r.section(
        raw,
        path,
        (
            "reply",
            "latency",
            "chunk_interval",
            "stream_chunks",
            "prompt_tokens",
            "completion_tokens",
            "embedding_dims",
        ),
    )
    d = MockSettings()
    return MockSettings(
        reply=r.get(s, path, "reply", r.nonempty_text, d.reply),
        latency=r.get(s, path, "latency", r.duration, d.latency),
        chunk_interval=r.get(s, path, "chunk_interval", r.duration, d.chunk_interval),
        stream_chunks=r.get(s, path, "stream_chunks", r.count, d.stream_chunks),
        prompt_tokens=r.get(s, path, "prompt_tokens", r.optional_count, d.prompt_tokens),
        completion_tokens=r.get(
            s, path, "completion_tokens", r.optional_count, d.completion_tokens
        ),
        embedding_dims=r.get(s, path, "embedding_dims", r.count, d.embedding_dims),
    )


OPENAI_URL = "https://api.openai.com"
_DEFAULT_BASE_URLS = {
    "openai": OPENAI_URL + "/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
    "mock": "http://mock.invalid",
}
_PROVIDER_FIELDS = (
    "kind",
    "enabled",
    "base_url",
    "api_key",
    "api_key_file",
    "headers",
    "max_connections",
    "timeouts",
    "proxy",
    "ca_file",
    "keepalive_timeout",
    "dns_ttl",
    "anthropic_version",
    "default_max_tokens",
    "max_tokens_field",
    "api_version",
    "bearer_token",
    "bearer_token_file",
    "aws",
    "mock",
)
# Fields that mean something for some kinds only, and the kinds they apply to.
_KIND_FIELDS = {
    "anthropic_version": ("anthropic",),
    "default_max_tokens": ("anthropic",),
    "max_tokens_field": ("openai", "azure"),
    "api_version": ("azure",),
    "bearer_token": ("azure",),
    "bearer_token_file": ("azure",),
    "aws": ("bedrock",),
    "mock": ("mock",),
}
_AWS_FIELDS = (
    "region",
    "access_key_id",
    "secret_access_key",
    "secret_access_key_file",
    "session_token",
    "session_token_file",
)


def _aws(r: Reader, raw: Any, path: str) -> AwsSettings:
    s = r.section(raw, path, _AWS_FIELDS)
    region = r.get(s, path, "region", r.nonempty_text, "") or (
        r.env.get("AWS_REGION") or r.env.get("AWS_DEFAULT_REGION") or ""
    )
    if not region:
        r.fail(f"{path}.region", "required (or set AWS_REGION in the environment)")
    settings = AwsSettings(
        region=region,
        access_key_id=r.get(s, path, "access_key_id", r.nonempty_text, None),
        secret_access_key=r.secret(s, path, "secret_access_key"),
        session_token=r.secret(s, path, "session_token"),
    )
    if (settings.access_key_id is None) != (settings.secret_access_key is None):
        r.fail(path, "give access_key_id and secret_access_key together, or neither")
    return settings


def aws_chain_available(env: Mapping[str, str]) -> bool:
    """Whether credentials can come from outside the config: the environment, or botocore's
    standard chain (IRSA web identity, profiles, instance roles) when the extra is installed."""
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return True
    from importlib.util import find_spec

    return find_spec("botocore") is not None


def _has_credentials(
    r: Reader, kind: str, s: dict[str, Any], keys: tuple[Secret | None, ...]
) -> bool:
    """Whether a provider of `kind` has what it needs to authenticate (`keys`: api_key, token)."""
    if kind == "mock":
        return True
    if kind == "bedrock":
        aws = s.get("aws")
        return (isinstance(aws, dict) and bool(aws.get("access_key_id"))) or aws_chain_available(
            r.env
        )
    if kind == "azure":
        return any(k is not None for k in keys)
    if kind == "openai" and not str(s.get("base_url", OPENAI_URL)).startswith(OPENAI_URL):
        return True  # a self-hosted OpenAI-compatible server may need no key
    return keys[0] is not None


def _missing_credentials(kind: str) -> tuple[str, str]:
    if kind == "bedrock":
        return "aws", (
            "no AWS credentials: give aws.access_key_id and aws.secret_access_key, set "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or install edgeproxy[bedrock] for the "
            "standard AWS chain (IRSA, profiles, instance roles)"
        )
    if kind == "azure":
        return "api_key", "required for this kind (give api_key, api_key_file or bearer_token)"
    return "api_key", "required for this kind (give api_key or api_key_file)"


def _provider(r: Reader, name: str, raw: Any) -> ProviderConfig | None:
    """Parse one provider; None when it is switched off (`enabled: false`, or `auto` sans key)."""
    path = f"providers.{name}"
    s = r.section(raw, path, _PROVIDER_FIELDS)
    kind = r.get(s, path, "kind", r.choice(PROVIDER_KINDS)) or "mock"
    enabled = r.get(s, path, "enabled", r.choice(("true", "false", "auto")), "true")
    api_key = r.secret(s, path, "api_key")
    token = r.secret(s, path, "bearer_token")
    if not _has_credentials(r, kind, s, (api_key, token)):
        if enabled == "auto":
            return None
        if enabled == "true":
            r.fail(f"{path}.{_missing_credentials(kind)[0]}", _missing_credentials(kind)[1])
    if enabled == "false":
        return None
    for key, kinds in _KIND_FIELDS.items():
        if key in s and kind not in kinds:
            r.fail(f"{path}.{key}", f"only applies to kind {' or '.join(kinds)}")
    if kind == "azure" and "base_url" not in s:
        r.fail(f"{path}.base_url", "required for kind azure (https://<resource>.openai.azure.com)")
    aws = _aws(r, s.get("aws"), f"{path}.aws") if kind == "bedrock" else AwsSettings()
    default_url = _DEFAULT_BASE_URLS.get(kind, "")
    if kind == "bedrock":
        default_url = f"https://bedrock-runtime.{aws.region}.amazonaws.com"
        if aws.region and url_problem(default_url, dns_name=True):
            r.fail(
                f"{path}.aws.region",
                f"expected an AWS region such as us-east-1, got {aws.region!r}",
            )
    reader = partial(r.url, base=True, dns_name=kind == "azure")
    base_url = r.get(s, path, "base_url", reader, default_url)
    official = base_url.startswith(OPENAI_URL)
    return ProviderConfig(
        name=name,
        kind=kind,
        base_url=base_url,
        api_key=api_key,
        headers=r.get(s, path, "headers", r.string_map, {}),
        max_connections=r.get(s, path, "max_connections", r.count, 100),
        timeouts=_timeouts(r, s.get("timeouts"), f"{path}.timeouts"),
        proxy=_egress_proxy(r, s, path, base_url),
        ca_file=r.get(s, path, "ca_file", r.readable_file, None),
        keepalive_timeout=r.get(s, path, "keepalive_timeout", r.positive_duration, 15.0),
        dns_ttl=r.get(s, path, "dns_ttl", r.duration, 60.0),
        anthropic_version=r.get(
            s, path, "anthropic_version", r.nonempty_text, DEFAULT_ANTHROPIC_VERSION
        ),
        default_max_tokens=r.get(s, path, "default_max_tokens", r.count, 4096),
        max_tokens_field=r.get(
            s,
            path,
            "max_tokens_field",
            r.choice(("max_tokens", "max_completion_tokens")),
            "max_completion_tokens" if kind == "azure" or official else "max_tokens",
        ),
        api_version=r.get(s, path, "api_version", r.nonempty_text, DEFAULT_AZURE_API_VERSION),
        bearer_token=token,
        aws=aws,
        mock=_mock(r, s.get("mock"), f"{path}.mock"),
    )


def _egress_proxy(r: Reader, s: dict[str, Any], path: str, base_url: str) -> str | None:
    """`proxy` as given (`none` or empty: direct), else what HTTPS_PROXY / HTTP_PROXY and
    NO_PROXY in the environment say for `base_url`."""
    if "proxy" not in s:
        chosen = proxy_for(base_url, r.env)
    else:
        chosen = r.get(s, path, "proxy", r.text, "")
        if chosen.strip().lower() in ("", "none"):
            return None
    if chosen is None:
        return None
    problem = proxy_url_problem(chosen)
    if problem is not None:
        where = f"{path}.proxy" if "proxy" in s else f"{path} (proxy from the environment)"
        r.fail(where, problem)
    return chosen


def _retry(r: Reader, raw: Any, path: str, base: RetrySettings) -> RetrySettings:
    """Retry settings: the fields given here over `base` (routing.retry for a model group)."""
    s = r.section(raw, path, tuple(RetrySettings.__slots__))
    settings = RetrySettings(
        max_attempts=r.get(s, path, "max_attempts", r.count, base.max_attempts),
        backoff_base=r.get(s, path, "backoff_base", r.positive_duration, base.backoff_base),
        backoff_max=r.get(s, path, "backoff_max", r.positive_duration, base.backoff_max),
        max_wait=r.get(s, path, "max_wait", r.duration, base.max_wait),
        budget_ratio=r.get(s, path, "budget_ratio", r.fraction, base.budget_ratio),
        budget_min=r.get(s, path, "budget_min", r.whole, base.budget_min),
        on_status=r.get(s, path, "on_status", r.statuses, base.on_status),
    )
    if settings.backoff_max < settings.backoff_base:
        r.fail(f"{path}.backoff_max", "must not be shorter than backoff_base")
    return settings


def _breaker(r: Reader, raw: Any, path: str) -> BreakerSettings:
    s = r.section(raw, path, tuple(BreakerSettings.__slots__))
    d = BreakerSettings()
    return BreakerSettings(
        failure_threshold=r.get(s, path, "failure_threshold", r.count, d.failure_threshold),
        error_rate=r.get(s, path, "error_rate", r.fraction, d.error_rate),
        min_requests=r.get(s, path, "min_requests", r.count, d.min_requests),
        window=r.get(s, path, "window", r.positive_duration, d.window),
        reset_timeout=r.get(s, path, "reset_timeout", r.positive_duration, d.reset_timeout),
        half_open_requests=r.get(s, path, "half_open_requests", r.count, d.half_open_requests),
    )


def _hybrid(r: Reader, raw: Any, path: str) -> HybridWeights:
    s = r.section(raw, path, ("cost", "latency", "reliability", "quality"))
    d = HybridWeights()
    weights = HybridWeights(
        cost=r.get(s, path, "cost", r.nonnegative_number, d.cost),
        latency=r.get(s, path, "latency", r.nonnegative_number, d.latency),
        reliability=r.get(s, path, "reliability", r.nonnegative_number, d.reliability),
        quality=r.get(s, path, "quality", r.nonnegative_number, d.quality),
    )
    if weights.cost + weights.latency + weights.reliability + weights.quality <= 0:
        r.fail(path, "at least one weight must be > 0")
    return weights


def _cache_key(r: Reader, raw: Any, path: str) -> CacheKeySettings:
    s = r.section(
        raw, path, ("include", "exclude", "case_insensitive", "share_across_dialects", "headers")
    )
    d = CacheKeySettings()
    headers = r.get(s, path, "headers", r.names, d.headers)
    for name in headers:
        if not HEADER_NAME(name):
            r.fail(f"{path}.headers", f"{name!r} is not an HTTP header name")
    return CacheKeySettings(
        headers=tuple(sorted({name.lower() for name in headers})),
        include=frozenset(r.get(s, path, "include", r.names, ())),
        exclude=frozenset(r.get(s, path, "exclude", r.names, ())),
        case_insensitive=r.get(s, path, "case_insensitive", r.boolean, d.case_insensitive),
        share_across_dialects=r.get(
            s, path, "share_across_dialects", r.boolean, d.share_across_dialects
        ),
    )


_REDIS_FIELDS = (
    "url",
    "cluster_nodes",
    "prefix",
    "timeout",
    "connect_timeout",
    "compress_over",
    "failure_threshold",
    "reset_timeout",
    "password",
    "password_file",
)


def _redis_url(r: Reader, path: str, value: Any) -> str | None:
    text = r.text(path, value)
    if not text:
        return None  # `url: ${REDIS_URL:-}` left empty: no L2
    if not re.match(r"^(redis|rediss|unix)://", text):
        r.fail(path, f"expected a redis://, rediss:// or unix:// URL, got {show(value)}")
    return text


def _redis(r: Reader, raw: Any, path: str) -> RedisSettings:
    s = r.section(raw, path, _REDIS_FIELDS)
    d = RedisSettings()
    nodes = r.get(s, path, "cluster_nodes", r.names, ())
    for node in nodes:
        host, _, port = node.rpartition(":")
        if not host or not port.isdigit():
            r.fail(f"{path}.cluster_nodes", f'expected "host:port" entries, got "{node}"')
    settings = RedisSettings(
        url=r.get(s, path, "url", lambda p, v: _redis_url(r, p, v), None),
        cluster_nodes=nodes,
        prefix=r.get(s, path, "prefix", r.nonempty_text, d.prefix),
        timeout=r.get(s, path, "timeout", r.positive_duration, d.timeout),
        connect_timeout=r.get(s, path, "connect_timeout", r.positive_duration, d.connect_timeout),
        compress_over=r.get(s, path, "compress_over", r.size, d.compress_over),
        failure_threshold=r.get(s, path, "failure_threshold", r.count, d.failure_threshold),
        reset_timeout=r.get(s, path, "reset_timeout", r.positive_duration, d.reset_timeout),
        password=r.secret(s, path, "password"),
    )
    if settings.url and settings.cluster_nodes:
        r.fail(path, "give url (one Redis) or cluster_nodes (a Redis Cluster), not both")
    return settings


def _semantic(r: Reader, raw: Any, path: str) -> SemanticSettings:
    s = r.section(raw, path, ("mode", "threshold", "budget", "max_chars", "embedder", "dims"))
    d = SemanticSettings()
    mode = r.get(s, path, "mode", r.choice(("shadow", "serve")), d.mode)
    threshold = r.get(s, path, "threshold", r.fraction, d.threshold)
    if threshold < 0.8:
        r.fail(f"{path}.threshold", f"below 0.8 unrelated questions match; got {threshold}")
    embedder = r.get(s, path, "embedder", r.nonempty_text, d.embedder)
    dims = r.get(s, path, "dims", r.count, None)
    if (embedder == "local") == (dims is not None):
        r.fail(
            f"{path}.dims",
            "required with an embeddings model group as embedder, and only then "
            "(the local model's vectors have 384 dimensions)",
        )
    return SemanticSettings(
        mode="serve" if mode == "serve" else "shadow",
        threshold=threshold,
        budget=r.get(s, path, "budget", r.positive_duration, d.budget),
        max_chars=r.get(s, path, "max_chars", r.count, d.max_chars),
        embedder=embedder,
        dims=dims,
    )


_CACHE_FIELDS = (
    "enabled",
    "ttl",
    "max_ttl",
    "namespace",
    "max_entries",
    "max_bytes",
    "max_entry_bytes",
    "skip_temperature_above",
    "key",
    "redis",
    "semantic",
)


def _cache(r: Reader, raw: Any) -> CacheConfig:
    path = "cache"
    s = r.section(raw, path, _CACHE_FIELDS)
    d = CacheConfig()
    return CacheConfig(
        enabled=r.get(s, path, "enabled", r.boolean, d.enabled),
        ttl=r.get(s, path, "ttl", r.positive_duration, d.ttl),
        max_ttl=r.get(s, path, "max_ttl", r.positive_duration, d.max_ttl),
        namespace=r.get(s, path, "namespace", r.nonempty_text, d.namespace),
        max_entries=r.get(s, path, "max_entries", r.count, d.max_entries),
        max_bytes=r.get(s, path, "max_bytes", r.size, d.max_bytes),
        max_entry_bytes=r.get(s, path, "max_entry_bytes", r.size, d.max_entry_bytes),
        skip_temperature_above=r.get(s, path, "skip_temperature_above", r.nonnegative_number, None),
        key=_cache_key(r, s.get("key"), f"{path}.key"),
        redis=_redis(r, s.get("redis"), f"{path}.redis"),
        semantic=_semantic(r, s.get("semantic"), f"{path}.semantic"),
    )


def _routing(r: Reader, raw: Any) -> RoutingConfig:
    path = "routing"
    s = r.section(raw, path, ("strategy", "exploration", "hybrid", "retry", "breaker"))
    d = RoutingConfig()
    return RoutingConfig(
        strategy=r.get(s, path, "strategy", r.choice(STRATEGIES), d.strategy),
        exploration=r.get(s, path, "exploration", r.fraction, d.exploration),
        hybrid=_hybrid(r, s.get("hybrid"), f"{path}.hybrid"),
        retry=_retry(r, s.get("retry"), f"{path}.retry", d.retry),
        breaker=_breaker(r, s.get("breaker"), f"{path}.breaker"),
    )


def _price(r: Reader, raw: Any, path: str) -> Price | None:
    if raw is None:
        return None
    s = r.section(raw, path, ("input", "output"))
    return Price(
        input=r.get(s, path, "input", r.nonnegative_number),
        output=r.get(s, path, "output", r.nonnegative_number),
    )


def _capabilities(r: Reader, path: str, value: Any) -> frozenset[str]:
    names = r.names(path, value)
    unknown = [n for n in names if n not in CAPABILITIES]
    if unknown:
        r.fail(path, f"unknown capability {unknown[0]!r} (known: {', '.join(CAPABILITIES)})")
    return frozenset(names)


_DEPLOYMENT_FIELDS = (
    "provider",
    "model",
    "weight",
    "name",
    "price",
    "context_window",
    "capabilities",
    "rpm",
    "tpm",
    "max_in_flight",
)


def _deployment(r: Reader, raw: Any, path: str, known: set[str]) -> DeploymentConfig:
    s = r.section(raw, path, _DEPLOYMENT_FIELDS)
    provider = r.get(s, path, "provider", r.nonempty_text)
    if provider and provider not in known:
        r.fail(
            f"{path}.provider",
            f'unknown provider "{provider}" (configured: {", ".join(sorted(known)) or "none"})',
        )
    model = r.get(s, path, "model", r.nonempty_text, None)
    capabilities = None
    if s.get("capabilities") is not None:
        capabilities = _capabilities(r, f"{path}.capabilities", s["capabilities"])
    return DeploymentConfig(
        provider=provider,
        model=model,
        weight=r.get(s, path, "weight", r.positive_number, 1.0),
        name=r.get(s, path, "name", r.nonempty_text, f"{provider}/{model or '*'}"),
        price=_price(r, s.get("price"), f"{path}.price"),
        context_window=r.get(s, path, "context_window", r.count, None),
        capabilities=capabilities,
        rpm=r.get(s, path, "rpm", r.count, None),
        tpm=r.get(s, path, "tpm", r.count, None),
        max_in_flight=r.get(s, path, "max_in_flight", r.count, None),
    )


_MODEL_FIELDS = (
    "deployments",
    "unsupported_params",
    "aliases",
    "strategy",
    "fallbacks",
    "context_fallbacks",
    "retry",
    "hedge_after",
    "cache",
)


def _model(
    r: Reader, name: str, entry: Any, routing: RoutingConfig, declared: set[str]
) -> ModelConfig | None:
    """One model group with every deployment (enabled or not); None if it cannot be read."""
    path = f"models.{name}"
    s = r.section(entry, path, _MODEL_FIELDS)
    items = s.get("deployments")
    if not isinstance(items, list) or not items:
        r.fail(f"{path}.deployments", f"expected a non-empty list, got {show(items)}")
        return None
    policy = r.get(s, path, "unsupported_params", r.choice(("drop", "reject")), "drop")
    return ModelConfig(
        name=name,
        deployments=tuple(
            _deployment(r, item, f"{path}.deployments[{i}]", declared)
            for i, item in enumerate(items)
        ),
        unsupported_params="reject" if policy == "reject" else "drop",
        aliases=r.get(s, path, "aliases", r.names, ()),
        strategy=r.get(s, path, "strategy", r.choice(STRATEGIES), routing.strategy),
        fallbacks=r.get(s, path, "fallbacks", r.names, ()),
        context_fallbacks=r.get(s, path, "context_fallbacks", r.names, ()),
        retry=_retry(r, s.get("retry"), f"{path}.retry", routing.retry),
        hedge_after=r.get(s, path, "hedge_after", r.positive_duration, None),
        **_model_cache(r, s.get("cache"), f"{path}.cache"),
    )


def _model_cache(r: Reader, raw: Any, path: str) -> dict[str, Any]:
    """A group's `cache: {enabled, ttl}` (or `cache: false`)."""
    if isinstance(raw, bool):
        return {"cache": raw}
    s = r.section(raw, path, ("enabled", "ttl", "semantic"))
    return {
        "cache": r.get(s, path, "enabled", r.boolean, True),
        "cache_ttl": r.get(s, path, "ttl", r.positive_duration, None),
        "cache_semantic": r.get(s, path, "semantic", r.boolean, False),
    }


def _check_ttls(r: Reader, cache: CacheConfig, models: Sequence[ModelConfig]) -> None:
    """No configured TTL outlives `cache.max_ttl`, the ceiling of what requests may ask."""
    ceiling = f"longer than cache.max_ttl ({cache.max_ttl:g}s)"
    if cache.ttl > cache.max_ttl:
        r.fail("cache.ttl", ceiling)
    for model in models:
        if model.cache_ttl is not None and model.cache_ttl > cache.max_ttl:
            r.fail(f"models.{model.name}.cache.ttl", ceiling)


def _check_names(r: Reader, models: list[ModelConfig]) -> None:
    """Aliases clash with nothing; fallbacks name configured groups; a deployment name means
    one deployment (they share a breaker and limits, so their settings must agree)."""
    owner: dict[str, str] = {}
    for model in models:
        for name in (model.name, *model.aliases):
            if name in owner and owner[name] != model.name:
                r.fail(f"models.{model.name}.aliases", f'"{name}" is already {owner[name]!r}')
            owner.setdefault(name, model.name)
    for model in models:
        for key in ("fallbacks", "context_fallbacks"):
            for target in getattr(model, key):
                if target not in owner:
                    r.fail(f"models.{model.name}.{key}", f'unknown model "{target}"')
                elif owner[target] == model.name:
                    r.fail(f"models.{model.name}.{key}", "a model cannot fall back to itself")
    seen: dict[str, DeploymentConfig] = {}
    for model in models:
        for i, d in enumerate(model.deployments):
            first = seen.setdefault(d.name, d)
            if replace(first, weight=d.weight) != d:
                r.fail(
                    f"models.{model.name}.deployments[{i}]",
                    f'deployment "{d.name}" is declared elsewhere with other settings '
                    "(give one of them a distinct name)",
                )


def _live(models: list[ModelConfig], enabled: set[str]) -> tuple[ModelConfig, ...]:
    """Groups with their switched-off deployments removed; a group left with none is dropped,
    and so are fallbacks naming it (its provider is off here, not misspelt)."""
    kept = {}
    for model in models:
        live = tuple(d for d in model.deployments if d.provider in enabled)
        if live:
            kept[model.name] = replace(model, deployments=live)
    names = {n for m in kept.values() for n in (m.name, *m.aliases)}
    return tuple(
        replace(
            m,
            fallbacks=tuple(f for f in m.fallbacks if f in names),
            context_fallbacks=tuple(f for f in m.context_fallbacks if f in names),
        )
        for m in kept.values()
    )


def _models(
    r: Reader, raw: Any, routing: RoutingConfig, declared: set[str], enabled: set[str]
) -> tuple[ModelConfig, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        r.fail("models", f"expected a mapping of model name to settings, got {show(raw)}")
        return ()
    models = [
        model
        for name, entry in raw.items()
        if (model := _model(r, str(name), entry, routing, declared)) is not None
    ]
    _check_names(r, models)
    return _live(models, enabled)


def _providers(r: Reader, raw: Any) -> tuple[dict[str, ProviderConfig], set[str]]:
    if raw is None:
        return {}, set()
    if not isinstance(raw, dict):
        r.fail("providers", f"expected a mapping of provider name to settings, got {show(raw)}")
        return {}, set()
    enabled = {}
    for name, entry in raw.items():
        provider = _provider(r, str(name), entry)
        if provider is not None:
            enabled[str(name)] = provider
    return enabled, {str(n) for n in raw}


def _env_overrides(
    r: Reader, server: ServerConfig, log: LoggingConfig, env: Mapping[str, str]
) -> tuple[ServerConfig, LoggingConfig]:
    """The few settings operators change per pod without editing the ConfigMap."""
    if env.get("EDGEPROXY_HOST"):
        server = replace(server, host=env["EDGEPROXY_HOST"])
    port = env.get("EDGEPROXY_PORT", "")
    if port and not port.startswith("tcp://"):  # tcp://... is a Service link, not ours
        server = replace(server, port=r.port("EDGEPROXY_PORT", FromEnv(port)))
    if env.get("EDGEPROXY_LOG_LEVEL"):
        level = r.choice(LOG_LEVELS)("EDGEPROXY_LOG_LEVEL", env["EDGEPROXY_LOG_LEVEL"])
        log = replace(log, level=level)
    return server, log


def parse(raw: Any, env: Mapping[str, str]) -> Config:
    """Validate an already-parsed YAML document; raises ConfigError listing every problem."""
    r = Reader(env)
    top = r.section(
        raw,
        "",
        (
            "server",
            "admin",
            "logging",
            "reload",
            "routing",
            "cache",
            "providers",
            "models",
            *SECTIONS,
            TELEMETRY,
        ),
    )
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(r.problems)
    server = _server(r, top.get("server"))
    admin = _admin(r, top.get("admin"))
    logging_ = _logging(r, top.get("logging"))
    reload = _reload(r, top.get("reload"))
    providers, declared = _providers(r, top.get("providers"))
    routing = _routing(r, top.get("routing"))
    cache = _cache(r, top.get("cache"))
    models = _models(r, top.get("models"), routing, declared, set(providers))
    _check_ttls(r, cache, models)
    security = parse_security(r, top, frozenset(m.name for m in models))
    telemetry = parse_telemetry(r, top)
    server, logging_ = _env_overrides(r, server, logging_, env)
    if r.problems:
        raise ConfigError(r.problems)
    return Config(
        server=server,
        admin=admin,
        logging=logging_,
        routing=routing,
        cache=cache,
        providers=providers,
        models=models,
        disabled_providers=tuple(sorted(declared - set(providers))),
        reload=reload,
        security=security,
        telemetry=telemetry,
    )


def default_config_text() -> str:
    """The embedded defaults, shipped inside the package (configs/edgeproxy.yaml is a copy)."""
    return resources.files("edgeproxy").joinpath("default_config.yaml").read_text("utf-8")


def load(path: str | Path | None, env: Mapping[str, str]) -> Config:
    """Load `path`, or the embedded defaults when None; raises ConfigError naming each field."""
    if path is None:
        text, source = default_config_text(), "<embedded defaults>"
    else:
        try:
            text, source = Path(path).read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read the file: {exc.strerror}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([f"{source}: not valid YAML{at}: {problem}"]) from None
    return parse(raw, env)
