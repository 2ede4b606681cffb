"""Configuration: YAML in, frozen typed dataclasses out, every error naming its field path.

`load(path, env)` reads a file (or the embedded defaults), substitutes `${VAR}` and
`${VAR:-default}` from `env` inside string values, reads secrets from files where asked,
validates everything and applies the per-pod overrides `EDGEPROXY_HOST`, `EDGEPROXY_PORT` and
`EDGEPROXY_LOG_LEVEL`. All problems are collected and raised together as a `ConfigError`, so a
process never starts half-configured and an operator sees every mistake in one go.

Each field is declared once, on its dataclass (`edgeproxy.config_spec`): YAML key, kind of
value, default, help and example. The loader, `edgeproxy schema` (JSON Schema) and
docs/configuration.md are derived from that; the rules relating fields to each other are the
explicit checks below, and each provider kind's rules live with its adapter
(`edgeproxy.providers`). The declarative layer is our own, a few hundred lines over the
existing `Reader`, rather than pydantic v2 or msgspec: it keeps every message as it was (all
problems at once, field path first, units and `${VAR}` in any scalar), adds no dependency, and
keeps start-up where it was (best of 8 to 12 runs on a loaded 2-core machine: importing this
module 139 ms of CPU against 146 before, 177 ms of wall clock against 160 as the provider
adapters now come with it; the first load of the defaults 46 ms against 42, later loads 43 ms).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from edgeproxy.config_reader import HEADER_NAME, ConfigError, FromEnv, Reader, Secret, show
from edgeproxy.config_spec import (
    BOOLEAN,
    COUNT,
    DURATION,
    FRACTION,
    NAMES,
    NONEMPTY_TEXT,
    NONNEGATIVE_NUMBER,
    PORT,
    POSITIVE_DURATION,
    POSITIVE_NUMBER,
    SIZE,
    STATUSES,
    WHOLE,
    Kind,
    ListOf,
    MapOf,
    Section,
    check_keys,
    choice,
    optional_section,
    read,
    read_checked,
    read_values,
    required,
    secret,
    section,
    setting,
)
from edgeproxy.passthrough_settings import SECTION as PASSTHROUGH
from edgeproxy.passthrough_settings import PassthroughSettings, parse_passthrough
from edgeproxy.providers import KIND_FIELDS, RULES
from edgeproxy.providers.settings import Given, ProviderConfig
from edgeproxy.security.settings import SecurityConfig, parse_security
from edgeproxy.telemetry.settings import SECTION as TELEMETRY
from edgeproxy.telemetry.settings import TelemetryConfig, parse_telemetry
from edgeproxy.wire.egress import Proxy, proxy_for
from edgeproxy.wire.urls import proxy_url_problem

LOG_LEVELS = ("debug", "info", "warning", "error")


_PROVIDER_HEAD = ("kind", "enabled", "api_key", "bearer_token")


def _provider(r: Reader, name: str, raw: Any) -> ProviderConfig | None:
    """Parse one provider by its kind's rules (`edgeproxy.providers`); None when it is
    switched off (`enabled: false`, or `auto` without credentials)."""
    path = f"providers.{name}"
    s = check_keys(r, ProviderConfig, raw, path)
    head = read_checked(r, ProviderConfig, s, path, only=_PROVIDER_HEAD)
    kind = head["kind"] or "mock"
    rules = RULES[kind]
    given = Given(s, head["api_key"] is not None, head["bearer_token"] is not None, r.env)
    if not rules.authenticated(given):
        if head["enabled"] == "auto":
            return None
        if head["enabled"] == "true":
            r.fail(f"{path}.{rules.missing[0]}", rules.missing[1])
    if head["enabled"] == "false":
        return None
    others = tuple(key for key, kinds in KIND_FIELDS.items() if kind not in kinds)
    for key in others:
        if key in s:
            r.fail(f"{path}.{key}", f"only applies to kind {' or '.join(KIND_FIELDS[key])}")
    if rules.required_url and "base_url" not in s:
        r.fail(f"{path}.base_url", rules.required_url)
    later = ("base_url", "proxy", "max_tokens_field")
    values = read_checked(r, ProviderConfig, s, path, skip=(*_PROVIDER_HEAD, *others, *later))
    if rules.check is not None:
        rules.check(r, values, path)
    reader = partial(r.url, base=True, dns_name=rules.dns_name)
    base_url = r.get(s, path, "base_url", reader, rules.base_url(values))
    if "max_tokens_field" not in others:
        tokens = {"max_tokens_field": rules.max_tokens_field(base_url)}
        values |= read_checked(r, ProviderConfig, s, path, only=tuple(tokens), defaults=tokens)
    return ProviderConfig(
        name=name,
        kind=kind,
        base_url=base_url,
        api_key=head["api_key"],
        bearer_token=head["bearer_token"],
        proxy=_egress_proxy(r, s, path, base_url),
        **values,
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


@dataclass(frozen=True, slots=True)
class Price:
    """What a deployment costs, in US dollars per million tokens."""

    input: float = required(NONNEGATIVE_NUMBER, "USD per million input tokens.", example=2.5)
    output: float = required(NONNEGATIVE_NUMBER, "USD per million output tokens.", example=10)

    def estimate(self, input_tokens: int, output_tokens: int) -> float:
        return (self.input * input_tokens + self.output * output_tokens) / 1_000_000


# What a deployment can be asked to do; a deployment that lists none is assumed to do all.
CAPABILITIES = ("vision", "tools", "json", "streaming")


def _capabilities(r: Reader, path: str, value: Any) -> frozenset[str]:
    names = r.names(path, value)
    unknown = [n for n in names if n not in CAPABILITIES]
    if unknown:
        r.fail(path, f"unknown capability {unknown[0]!r} (known: {', '.join(CAPABILITIES)})")
    return frozenset(names)


_CAPABILITY_LIST = Kind(
    _capabilities,
    {
        "anyOf": [
            {"enum": list(CAPABILITIES)},
            {"type": "array", "items": {"enum": list(CAPABILITIES)}},
        ]
    },
    "list of " + " | ".join(CAPABILITIES),
    ["tools", "streaming"],
    sorted,
)


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    """One place a model is served: `model` None forwards the name the client asked for.

    `name` identifies the deployment (default `provider/model`): deployments of the same name
    in several groups share one breaker, health record and set of local limits.
    """

    provider: str = required(NONEMPTY_TEXT, "A provider of `providers`.", example="openai")
    model: str | None = setting(
        None,
        NONEMPTY_TEXT,
        "The upstream model name (left out: the name the client asked for).",
        example="gpt-4o-2024-08-06",
    )
    weight: float = setting(1.0, POSITIVE_NUMBER, "Share of traffic under the weighted strategy.")
    name: str = setting(
        "",
        NONEMPTY_TEXT,
        "Identifies the deployment (default provider/model): deployments of the same name in "
        "several groups share one breaker, health record and set of limits.",
        example="openai/gpt-4o",
        shown="provider/model",
    )
    price: Price | None = optional_section(
        Price, "{input, output} in USD per million tokens (cost and hybrid strategies)."
    )
    context_window: int | None = setting(
        None,
        COUNT,
        "In tokens: a request whose estimated prompt plus max_tokens does not fit skips it.",
        example=128000,
    )
    capabilities: frozenset[str] | None = setting(
        None,
        _CAPABILITY_LIST,
        "What it can do (left out: all). A request needing one it lacks skips it; if nothing "
        "fits, the client gets a 400 saying why.",
    )
    rpm: int | None = setting(
        None, COUNT, "Requests per minute this proxy sends it at most.", example=5000
    )
    tpm: int | None = setting(
        None, COUNT, "Tokens per minute this proxy sends it at most.", example=2000000
    )
    max_in_flight: int | None = setting(
        None,
        COUNT,
        "Concurrent requests at most: load spreads to the other deployments before the "
        "provider answers 429.",
        example=64,
    )


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a deployment's circuit opens, and how it is probed before it closes again.

    It opens after `failure_threshold` consecutive failures, or when at least `min_requests`
    calls in the last `window` seconds failed at `error_rate` or more; it stays open for
    `reset_timeout` (or the provider's longer retry-after), then admits `half_open_requests`
    probes: that many successes close it, one failure opens it again.
    """

    failure_threshold: int = setting(5, COUNT, "Consecutive failures that open it.")
    error_rate: float = setting(
        0.5, FRACTION, "Failure rate over `window` that opens it (with min_requests calls)."
    )
    min_requests: int = setting(20, COUNT, "Calls in the window before error_rate counts.")
    window: float = setting(30.0, POSITIVE_DURATION, "The window error_rate is measured over.")
    reset_timeout: float = setting(
        60.0, POSITIVE_DURATION, "How long it stays open (longer if retry-after says so)."
    )
    half_open_requests: int = setting(
        3, COUNT, "Probes let through once it half-opens; that many successes close it."
    )


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

    max_attempts: int = setting(3, COUNT, "Every upstream attempt a group makes for a request.")
    backoff_base: float = setting(
        0.1, POSITIVE_DURATION, "The first wait before the same deployment is tried again."
    )
    backoff_max: float = setting(5.0, POSITIVE_DURATION, "The longest backoff (it doubles).")
    max_wait: float = setting(
        30.0, DURATION, "The longest wait for a retry, provider retry-after included."
    )
    budget_ratio: float = setting(
        0.2, FRACTION, "Retries in flight stay below this share of requests in flight."
    )
    budget_min: int = setting(3, WHOLE, "Retries in flight always allowed, whatever the ratio.")
    on_status: frozenset[int] = setting(
        RETRY_STATUSES, STATUSES, "Upstream statuses that count as a failed attempt."
    )


def _retry(r: Reader, raw: Any, path: str, base: RetrySettings | None = None) -> RetrySettings:
    """Retry settings: the fields given here over `base` (routing.retry for a model group)."""
    settings = RetrySettings(**read_values(r, RetrySettings, raw, path, base=base))
    if settings.backoff_max < settings.backoff_base:
        r.fail(f"{path}.backoff_max", "must not be shorter than backoff_base")
    return settings


@dataclass(frozen=True, slots=True)
class HybridWeights:
    """The `hybrid` strategy's score: cost·(1 - cost/max) + latency·(1 - ttfb/max) +
    reliability·success_rate + quality·feedback_quality (0 by default: the apps' feedback
    steers routing only where an operator asks it to)."""

    cost: float = setting(0.4, NONNEGATIVE_NUMBER, "Weight of cheapness.")
    latency: float = setting(0.4, NONNEGATIVE_NUMBER, "Weight of a short time to first byte.")
    reliability: float = setting(0.2, NONNEGATIVE_NUMBER, "Weight of the success rate.")
    quality: float = setting(
        0.0, NONNEGATIVE_NUMBER, "Weight of the apps' feedback score (docs/feedback.md)."
    )


def _hybrid(r: Reader, raw: Any, path: str) -> HybridWeights:
    weights = read(r, HybridWeights, raw, path)
    if weights.cost + weights.latency + weights.reliability + weights.quality <= 0:
        r.fail(path, "at least one weight must be > 0")
    return weights


STRATEGIES = ("weighted", "latency", "cost", "hybrid")
_STRATEGY = choice(STRATEGIES)


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """Defaults for every model group, and the settings that belong to deployments."""

    strategy: str = setting(
        "weighted",
        _STRATEGY,
        "weighted (random by weight), latency (lowest moving average of time to first byte), "
        "cost (cheapest by price for the estimated tokens) or hybrid (see `hybrid`). A request "
        "may ask for another with the header x-edgeproxy-strategy.",
    )
    exploration: float = setting(
        0.05,
        FRACTION,
        "Share of traffic the latency strategy sends at random, so a recovered deployment is "
        "measured again.",
    )
    hybrid: HybridWeights = section(HybridWeights, "The hybrid strategy's weights.", parse=_hybrid)
    retry: RetrySettings = section(
        RetrySettings,
        "How a failed attempt is retried (each model group may override it). A stream is "
        "never retried once its first byte went to the client.",
        parse=_retry,
    )
    breaker: BreakerSettings = section(
        BreakerSettings, "One circuit breaker per deployment: when it opens and closes."
    )


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """A public model name (or a `*` glob such as `claude-*`) and where it is served.

    `unsupported_params` says what a cross-dialect route does with a request field the
    provider cannot express: `drop` it (named in `x-edgeproxy-dropped-params`) or `reject`.
    """

    name: str
    deployments: tuple[DeploymentConfig, ...] = required(
        ListOf(Section(DeploymentConfig), nonempty=True), "Where it is served (at least one)."
    )
    unsupported_params: Literal["drop", "reject"] = setting(
        "drop",
        choice(("drop", "reject")),
        "What a translated request does with a field the provider cannot express: drop it "
        "(named in x-edgeproxy-dropped-params) or reject it with a 400.",
    )
    aliases: tuple[str, ...] = setting((), NAMES, "Other exact names for this group.")
    strategy: str = setting(
        "weighted", _STRATEGY, "This group's strategy.", shown="routing.strategy"
    )
    fallbacks: tuple[str, ...] = setting(
        (), NAMES, "Groups to try, in order, when this one fails or has nothing available."
    )
    context_fallbacks: tuple[str, ...] = setting(
        (), NAMES, "Larger-context groups for a prompt too long for this one."
    )
    retry: RetrySettings = section(
        RetrySettings, "Overrides of routing.retry for this group.", parse=_retry
    )
    hedge_after: float | None = setting(
        None,
        POSITIVE_DURATION,
        "With no first byte by then, race a second deployment and cancel the slower one.",
        example="4s",
    )
    cache: bool = setting(
        True,
        BOOLEAN,
        "Whether its answers are cached (`cache: false` says the same).",
        key="cache.enabled",
        shorthand=True,
    )
    cache_ttl: float | None = setting(
        None,
        POSITIVE_DURATION,
        "How long its answers are kept.",
        key="cache.ttl",
        example="10m",
        shown="cache.ttl",
    )
    cache_semantic: bool = setting(
        False,
        BOOLEAN,
        "Whether it uses the semantic cache (cache.semantic).",
        key="cache.semantic",
    )

    @property
    def is_pattern(self) -> bool:
        return "*" in self.name or "?" in self.name


def _header_names(r: Reader, path: str, value: Any) -> tuple[str, ...]:
    headers = r.names(path, value)
    for name in headers:
        if not HEADER_NAME(name):
            r.fail(path, f"{name!r} is not an HTTP header name")
    return tuple(sorted({name.lower() for name in headers}))


_HEADER_NAME = {"type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"}
_HEADER_NAMES = {"anyOf": [_HEADER_NAME, {"type": "array", "items": _HEADER_NAME}]}


def _name_set(r: Reader, path: str, value: Any) -> frozenset[str]:
    return frozenset(r.names(path, value))


_NAME_SET = Kind(_name_set, NAMES.json, "list of names", ["temperature"], sorted)


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

    include: frozenset[str] = setting(
        frozenset(), _NAME_SET, "Request fields excluded by default to put back in the key."
    )
    exclude: frozenset[str] = setting(
        frozenset(), _NAME_SET, "Request fields to leave out of the key."
    )
    case_insensitive: bool = setting(
        False, BOOLEAN, 'Fold the case of message text ("Hello" and "hello" share an entry).'
    )
    share_across_dialects: bool = setting(
        False, BOOLEAN, "Let an OpenAI and an Anthropic client asking the same thing share one."
    )
    headers: tuple[str, ...] = setting(  # lower case, sorted
        ("anthropic-beta",),
        Kind(_header_names, _HEADER_NAMES, "list of header names", ["anthropic-beta"], list),
        "Request headers that change answers: their values are part of the key.",
    )


def _redis_url(r: Reader, path: str, value: Any) -> str | None:
    text = r.text(path, value)
    if not text:
        return None  # `url: ${REDIS_URL:-}` left empty: no L2
    if not re.match(r"^(redis|rediss|unix)://", text):
        r.fail(path, f"expected a redis://, rediss:// or unix:// URL, got {show(value)}")
    return text


REDIS_URL = Kind(
    _redis_url,
    {"type": "string", "pattern": "^((rediss?|unix)://.*)?$"},
    "Redis URL",
    "redis://redis:6379/0",
)


def _cluster_nodes(r: Reader, path: str, value: Any) -> tuple[str, ...]:
    nodes = r.names(path, value)
    for node in nodes:
        host, _, port = node.rpartition(":")
        if not host or not port.isdigit():
            r.fail(path, f'expected "host:port" entries, got "{node}"')
    return nodes


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """The shared L2 cache: one Redis (`url`) or a Redis Cluster (`cluster_nodes`)."""

    url: str | None = setting(
        None, REDIS_URL, "One Redis (empty: the cache is L1 only).", example="${REDIS_URL:-}"
    )
    cluster_nodes: tuple[str, ...] = setting(
        (),
        Kind(
            _cluster_nodes,
            {"type": "array", "items": {"type": "string", "pattern": ":[0-9]+$"}},
            "list of host:port",
            ["redis-0:6379", "redis-1:6379"],
            list,
        ),
        "A Redis Cluster's nodes, instead of url.",
    )
    prefix: str = setting("edgeproxy", NONEMPTY_TEXT, "Prefix of every key.")
    timeout: float = setting(
        0.05, POSITIVE_DURATION, "Each call on the request path (then: a miss)."
    )
    connect_timeout: float = setting(0.5, POSITIVE_DURATION, "Connecting to Redis.")
    compress_over: int = setting(4096, SIZE, "Entries larger than this are compressed.")
    failure_threshold: int = setting(
        3, COUNT, "Consecutive failures that open Redis's own breaker."
    )
    reset_timeout: float = setting(5.0, POSITIVE_DURATION, "How long that breaker stays open.")
    password: Secret | None = secret("The Redis password, if not in the URL.")

    @property
    def enabled(self) -> bool:
        return self.url is not None or bool(self.cluster_nodes)


def _redis(r: Reader, raw: Any, path: str) -> RedisSettings:
    settings = read(r, RedisSettings, raw, path)
    if settings.url and settings.cluster_nodes:
        r.fail(path, "give url (one Redis) or cluster_nodes (a Redis Cluster), not both")
    return settings


@dataclass(frozen=True, slots=True)
class SemanticSettings:
    """The semantic layer, for the groups that opt in (`cache: {semantic: true}`).

    `shadow` (the default) answers as usual and counts would-be hits, so precision can be
    measured before `serve` answers from them. A match needs cosine >= `threshold` and the
    lexical guard; embedding the question may take `budget` at most (else the layer is
    skipped); questions longer than `max_chars` are not embedded.
    """

    mode: Literal["shadow", "serve"] = setting(
        "shadow",
        choice(("shadow", "serve")),
        "shadow: answer as usual and count would-be hits (with whether the fresh answer "
        "agreed); serve: answer from them.",
    )
    threshold: float = setting(
        0.95,
        Kind(
            Reader.fraction,
            {"type": "number", "minimum": 0.8, "maximum": 1},
            "number from 0.8 to 1",
        ),
        "Cosine similarity a match needs (at least 0.8).",
        example=0.95,
    )
    budget: float = setting(
        0.05, POSITIVE_DURATION, "The longest embedding may take, else the layer is skipped."
    )
    max_chars: int = setting(1000, COUNT, "Longer questions are not embedded.")
    embedder: str = setting(  # or the name of an embeddings model group of this proxy
        "local",
        NONEMPTY_TEXT,
        "local (the offline model of the `semantic` extra) or an embeddings model group.",
    )
    dims: int | None = setting(  # that group's vector size (required with one)
        None, COUNT, "The vector size of an embeddings model group (only with one).", example=384
    )


def _semantic(r: Reader, raw: Any, path: str) -> SemanticSettings:
    settings = read(r, SemanticSettings, raw, path)
    if settings.threshold < 0.8:
        r.fail(
            f"{path}.threshold", f"below 0.8 unrelated questions match; got {settings.threshold}"
        )
    if (settings.embedder == "local") == (settings.dims is not None):
        r.fail(
            f"{path}.dims",
            "required with an embeddings model group as embedder, and only then "
            "(the local model's vectors have 384 dimensions)",
        )
    return settings


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """The exact cache: L1 in process (always), L2 in Redis (when configured)."""

    enabled: bool = setting(True, BOOLEAN, "Answer identical questions from the cache.")
    ttl: float = setting(3600.0, POSITIVE_DURATION, "How long an answer is kept.")
    max_ttl: float = setting(  # the longest any entry lives, whatever a request asks
        86400.0,
        POSITIVE_DURATION,
        "The longest any entry lives: what a request asks for is capped here, and no "
        "configured ttl may exceed it.",
    )
    namespace: str = setting("default", NONEMPTY_TEXT, "The entries' namespace without keys.")
    max_entries: int = setting(10_000, COUNT, "L1 (in this process): entries at most.")
    max_bytes: int = setting(64 * 1024 * 1024, SIZE, "L1: bytes of answers held at most.")
    max_entry_bytes: int = setting(4 * 1024 * 1024, SIZE, "Larger answers are not kept.")
    skip_temperature_above: float | None = setting(
        None,
        NONNEGATIVE_NUMBER,
        "Answers sampled with a temperature above this are never reused.",
        example=1.0,
    )
    key: CacheKeySettings = section(CacheKeySettings, "What makes two requests the same.")
    redis: RedisSettings = section(
        RedisSettings,
        "L2, shared by every sidecar. A slow or dead Redis only means misses.",
        parse=_redis,
    )
    semantic: SemanticSettings = section(
        SemanticSettings,
        "The semantic layer, for model groups that opt in with `cache: {semantic: true}`.",
        parse=_semantic,
    )


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The data listener the application talks to, on loopback by default."""

    host: str = setting("127.0.0.1", NONEMPTY_TEXT, "Address to listen on (loopback: a sidecar).")
    port: int = setting(8080, PORT, "Port of the data listener.")
    max_body_bytes: int = setting(
        32 * 1024 * 1024, SIZE, "Largest request body accepted (larger: 413).", key="max_body"
    )
    keepalive_timeout: float = setting(
        75.0, DURATION, "How long an idle client keep-alive connection is kept open."
    )
    header_timeout: float = setting(
        10.0, POSITIVE_DURATION, "A request's headers must be complete within this (else 408)."
    )
    body_timeout: float = setting(
        60.0, POSITIVE_DURATION, "A request's body must arrive within this of its headers."
    )
    send_timeout: float = setting(
        60.0,
        POSITIVE_DURATION,
        "A client that takes no bytes of a streamed answer for this long is dropped.",
    )
    max_header_bytes: int = setting(
        16 * 1024,
        SIZE,
        "The request line and headers together (larger: 431).",
        key="max_header_size",
    )
    max_headers: int = setting(100, COUNT, "Header fields a request may have (more: 431).")
    shutdown_grace: float = setting(
        20.0, DURATION, "On SIGTERM, how long in-flight requests and streams get to finish."
    )
    drain_delay: float = setting(
        5.0,
        DURATION,
        "On SIGTERM, how long the listener keeps serving after readiness turns false.",
    )
    workers: int = setting(1, COUNT, "Processes serving the data port together (SO_REUSEPORT).")
    access_log: bool = setting(False, BOOLEAN, "One JSON line per request.")


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """Probes and admin actions, on all interfaces: kubelet and Prometheus reach the pod IP."""

    enabled: bool = setting(True, BOOLEAN, "Serve the admin listener.")
    host: str = setting("0.0.0.0", NONEMPTY_TEXT, "Address (all interfaces: probes use the IP).")
    port: int = setting(9090, PORT, "Port of /healthz, /readyz, /metrics and /admin/*.")
    token: Secret | None = secret(
        "Guards /admin/* (Authorization: Bearer); without one, actions that change state are "
        "refused.",
        example="${EDGEPROXY_ADMIN_TOKEN:-}",
    )


@dataclass(frozen=True, slots=True)
class ReloadConfig:
    """Hot reload of the configuration file (a mounted ConfigMap): its directory is checked
    every `interval`, so Kubernetes' `..data` symlink swap is seen; SIGHUP and
    POST /admin/reload reload at once whatever `enabled` says."""

    enabled: bool = setting(True, BOOLEAN, "Watch the configuration file's directory.")
    interval: float = setting(2.0, POSITIVE_DURATION, "How often it is checked.")


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = setting("info", choice(LOG_LEVELS), "Least severe level logged.")
    format: Literal["json", "text"] = setting("json", choice(("json", "text")), "Line format.")


@dataclass(frozen=True, slots=True)
class Config:
    """A whole configuration. `parse` reads it section by section, in the order their rules
    need (providers and models by their own functions: a provider switched off is dropped, a
    kind's rules apply, models name providers); the declarations give the keys and the schema."""

    server: ServerConfig = section(ServerConfig, "The data listener your application talks to.")
    admin: AdminConfig = section(AdminConfig, "Probes, metrics and admin actions.")
    logging: LoggingConfig = section(LoggingConfig, "The process's log.")
    routing: RoutingConfig = section(
        RoutingConfig, "How requests are spread over deployments and survive their failures."
    )
    cache: CacheConfig = section(CacheConfig, "The exact cache, and the semantic layer.")
    providers: Mapping[str, ProviderConfig] = setting(
        {},
        MapOf(Section(ProviderConfig), what="provider name to settings", example_key="openai"),
        "Upstream providers, by a name of your choice.",
    )
    models: tuple[ModelConfig, ...] = setting(
        (),
        MapOf(Section(ModelConfig), what="model name to settings", example_key="gpt-4o"),
        "Public model names (or `*` patterns) and where each is served.",
    )
    disabled_providers: tuple[str, ...] = ()
    reload: ReloadConfig = section(ReloadConfig, "Hot reload of the configuration file.")
    security: SecurityConfig = section(
        SecurityConfig, "Callers, limits, budgets, prices and guardrails.", inline=True
    )
    telemetry: TelemetryConfig = section(
        TelemetryConfig, "Metrics, events, incidents, feedback and tracing.", key=TELEMETRY
    )
    passthrough: PassthroughSettings = section(
        PassthroughSettings,
        "The API paths the proxy does not serve itself, forwarded to a provider as they are.",
        key=PASSTHROUGH,
    )

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


# --- the rules that relate fields to each other -----------------------------------------------


def _model(
    r: Reader, name: str, entry: Any, routing: RoutingConfig, declared: set[str]
) -> ModelConfig | None:
    """One model group with every deployment (enabled or not); None if it cannot be read."""
    path = f"models.{name}"
    s = check_keys(r, ModelConfig, entry, path)
    items = s.get("deployments")
    if not isinstance(items, list) or not items:
        r.fail(f"{path}.deployments", f"expected a non-empty list, got {show(items)}")
        return None
    values = read_checked(
        r, ModelConfig, s, path, skip=("retry",), defaults={"strategy": routing.strategy}
    )
    deployments = []
    for i, d in enumerate(values.pop("deployments")):
        if d.provider and d.provider not in declared:
            r.fail(
                f"{path}.deployments[{i}].provider",
                f'unknown provider "{d.provider}" '
                f"(configured: {', '.join(sorted(declared)) or 'none'})",
            )
        deployments.append(d if d.name else replace(d, name=f"{d.provider}/{d.model or '*'}"))
    return ModelConfig(
        name=name,
        deployments=tuple(deployments),
        retry=_retry(r, s.get("retry"), f"{path}.retry", routing.retry),
        **values,
    )


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
    top = check_keys(r, Config, raw, "")
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(r.problems)
    sections = read_checked(r, Config, top, "", only=("server", "admin", "logging", "reload"))
    providers, declared = _providers(r, top.get("providers"))
    routing = read(r, RoutingConfig, top.get("routing"), "routing")
    cache = read(r, CacheConfig, top.get("cache"), "cache")
    models = _models(r, top.get("models"), routing, declared, set(providers))
    _check_ttls(r, cache, models)
    security = parse_security(r, top, frozenset(m.name for m in models))
    telemetry = parse_telemetry(r, top)
    passthrough = parse_passthrough(r, top.get(PASSTHROUGH), providers, declared)
    server, logging_ = _env_overrides(r, sections["server"], sections["logging"], env)
    if r.problems:
        raise ConfigError(r.problems)
    return Config(
        server=server,
        admin=sections["admin"],
        logging=logging_,
        routing=routing,
        cache=cache,
        providers=providers,
        models=models,
        disabled_providers=tuple(sorted(declared - set(providers))),
        reload=sections["reload"],
        security=security,
        telemetry=telemetry,
        passthrough=passthrough,
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
