"""The configuration of tenancy and guardrails: callers and their keys, teams, limits, budgets,
guardrail policies and the Redis that replicas share them through.

Parsed with the configuration's one `Reader`, so every problem names its field. Everything a
request needs is decided here, at load: a key's hash, its allowed model groups, its policy.

    auth:
      mode: keys                        # none (default): a trusted loopback sidecar
      keys:
        - id: web
          hash: sha256:<64 hex>         # printed by `edgeproxy hash-key`
          team: storefront
          models: [gpt-4o-mini]         # model groups it may call (default: all)
          limits: {rpm: 60, tpm: 100000, parallel: 8}
          budget: {daily_usd: 5, monthly_usd: 100}
          cache_namespace: storefront   # default: its team, else its id
          policy: strict                # a guardrails policy (default: the route's)
          metadata: {owner: web-team}
      teams:
        storefront: {limits: {rpm: 600}, budget: {monthly_usd: 1000}}
      redis_keys: false                 # also keys created through the admin API, in Redis
    redis:                              # shared by replicas: keys, limits, spend
      url: redis://redis:6379/0
      prefix: edgeproxy
      timeout: 50ms                     # the most a request waits for it
      cluster: false                    # url names one node of a Redis Cluster
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from edgeproxy.config_reader import ConfigError, Reader, Secret, show
from edgeproxy.config_spec import (
    BOOLEAN,
    COUNT,
    FRACTION,
    NAMES,
    NONEMPTY_TEXT,
    POSITIVE_DURATION,
    POSITIVE_NUMBER,
    READABLE_FILE,
    STRING_MAP,
    WHOLE,
    Declared,
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
    url,
    yaml_only,
)
from edgeproxy.extras import SEMANTIC, SEMANTIC_PACKAGES, missing
from edgeproxy.pricing import PricingTable, load_pricing

AUTH_MODES = ("none", "keys")
BACKEND_POLICIES = ("local", "open", "closed")
PII_KINDS = ("email", "phone", "credit_card", "iban", "ssn", "ip", "secret")
RULE_MODES = ("block", "redact", "monitor")
SHIELD_MODES = ("blocking", "monitoring", "audit")
OPERATION_LABELS = ("chat", "completions", "embeddings", "responses", "messages", "count_tokens")
_DIGEST = re.compile(r"(?:sha256:)?([0-9a-f]{64})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def _named(r: Reader, path: str, value: Any) -> str:
    """A name (an id, a team, a namespace): what goes into Redis keys and log fields."""
    text = r.nonempty_text(path, value)
    if text and not _NAME.fullmatch(text):
        r.fail(path, f"expected letters, digits and _.:- (at most 128), got {show(text)}")
    return text


NAME = Kind(_named, {"type": "string", "pattern": "^" + _NAME.pattern + "$"}, "name", "storefront")


def _digest(r: Reader, path: str, value: Any) -> str:
    match = _DIGEST.fullmatch(r.text(path, value).strip().lower())
    if match is None:
        r.fail(
            path,
            "expected sha256:<64 hex digits> as printed by `edgeproxy hash-key` "
            "(the key itself never goes in the configuration)",
        )
        return ""
    return match.group(1)


def _model_names(r: Reader, path: str, value: Any) -> frozenset[str]:
    return frozenset(r.names(path, value))


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Requests and tokens per minute, and requests in flight; None: no limit."""

    rpm: int | None = setting(None, COUNT, "Requests per minute.", example=600)
    tpm: int | None = setting(None, COUNT, "Tokens per minute.", example=200000)
    parallel: int | None = setting(None, COUNT, "Requests in flight.", example=16)

    def __bool__(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.parallel is not None


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """US dollars per UTC day and per UTC month; None: no budget."""

    daily_usd: float | None = setting(None, POSITIVE_NUMBER, "USD per UTC day.", example=20)
    monthly_usd: float | None = setting(None, POSITIVE_NUMBER, "USD per UTC month.", example=400)

    def __bool__(self) -> bool:
        return self.daily_usd is not None or self.monthly_usd is not None


@dataclass(frozen=True, slots=True)
class KeySettings:
    """A virtual key as the operator configured it; only the SHA-256 of the key is kept."""

    id: str = required(NAME, "Names the caller in logs, limits and spend.", example="web")
    digest: str = required(  # 64 lower-case hex digits
        Kind(
            _digest,
            {"type": "string", "pattern": "^(sha256:)?[0-9a-fA-F]{64}$"},
            "sha256 digest",
            "sha256:" + "0" * 64,
        ),
        "sha256:<64 hex digits>, printed by `edgeproxy hash-key` (never the key itself).",
        key="hash",
    )
    team: str | None = setting(None, NAME, "Its team (limits, budget, cache namespace).")
    models: frozenset[str] | None = setting(  # None: every model group
        None,
        Kind(_model_names, NAMES.json, "list of model groups", ["gpt-4o-mini"], sorted),
        "Model groups it may call (default: all).",
    )
    limits: LimitSettings = section(LimitSettings, "Its own rate limits.")
    budget: BudgetSettings = section(BudgetSettings, "Its own budget.")
    cache_namespace: str | None = setting(
        None, NAME, "Where its answers are cached (default: its team, else its id)."
    )
    policy: str | None = setting(
        None, NONEMPTY_TEXT, "A guardrails policy (default: the route's).", example="strict"
    )
    metadata: Mapping[str, str] = setting({}, STRING_MAP, "Free-form labels.")

    @property
    def tenant(self) -> str:
        """The cache namespace of its answers: keys of one tenant share them, no one else."""
        return self.cache_namespace or self.team or self.id


@dataclass(frozen=True, slots=True)
class TeamSettings:
    limits: LimitSettings = section(LimitSettings, "The team's rate limits, all keys together.")
    budget: BudgetSettings = section(BudgetSettings, "The team's budget.")


@dataclass(frozen=True, slots=True)
class AuthConfig:
    mode: Literal["none", "keys"] = setting(
        "none",
        choice(AUTH_MODES),
        "none: a trusted loopback sidecar; keys: every request needs a virtual key.",
    )
    keys: tuple[KeySettings, ...] = setting(
        (), ListOf(Section(KeySettings)), "The virtual keys (with mode: keys)."
    )
    teams: Mapping[str, TeamSettings] = setting(
        {},
        MapOf(Section(TeamSettings), NAME, "team name to settings", example_key="storefront"),
        "Limits and budgets per team.",
    )
    redis_keys: bool = setting(
        False, BOOLEAN, "Also accept keys created through /admin/keys, kept in redis."
    )


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Limits per model group (every caller together) and what happens when Redis fails:
    `local` keeps counting in this process on `local_share` of each limit, `open` lets
    requests through, `closed` refuses them."""

    groups: Mapping[str, LimitSettings] = setting(
        {},
        MapOf(Section(LimitSettings), what="model group to limits", example_key="gpt-4o"),
        "Limits per model group, for every caller together.",
    )
    on_redis_error: Literal["local", "open", "closed"] = setting(
        "local",
        choice(BACKEND_POLICIES),
        "When the shared Redis fails: local (count in this process on local_share of each "
        "limit), open (admit) or closed (refuse with a 503).",
    )
    local_share: float = setting(
        1.0,
        Kind(
            Reader.fraction,
            {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "number above 0, up to 1",
            0.5,
        ),
        "Share of each limit counted locally (1 / replicas keeps the total).",
    )
    # How a request's prompt tokens are estimated for TPM: characters / 4, or counted by
    # tiktoken (installed separately; it loads its encoding at start, from its cache
    # directory, TIKTOKEN_CACHE_DIR, or the network; failing that, the heuristic applies).
    tokenizer: Literal["heuristic", "tiktoken"] = setting(
        "heuristic",
        choice(("heuristic", "tiktoken")),
        "How prompt tokens are estimated: characters / 4, or tiktoken (pip install tiktoken).",
    )


@dataclass(frozen=True, slots=True)
class BudgetsConfig:
    on_redis_error: Literal["open", "closed"] = setting(
        "open", choice(("open", "closed")), "While spend cannot be checked: admit, or refuse."
    )


_OVERRIDES = Kind(
    lambda r, path, value: value,
    {"type": "object", "additionalProperties": {"type": "object"}},
    "mapping of provider to model prices",
    {"openai": {"gpt-4o": {"input": 2.5, "output": 10}}},
)


@dataclass(frozen=True, slots=True)
class PricingConfig:
    """The price table: the embedded one, then an operator's file, then inline entries."""

    YAML_ONLY: ClassVar[tuple[Declared, ...]] = (
        yaml_only(
            "overrides",
            None,
            _OVERRIDES,
            "Inline entries over both, per provider and model: input, output, cached_input, "
            "cache_write (USD per million tokens), source, as_of.",
        ),
    )

    table: PricingTable = field(default_factory=load_pricing)
    file: str | None = setting(
        None, READABLE_FILE, "A price table file, over the built-in one (configs/pricing.yaml)."
    )


@dataclass(frozen=True, slots=True)
class SharedState:
    """The Redis that replicas share keys, limits and spend through (None: this process)."""

    url: str | None = setting(
        None,
        Kind(
            lambda r, path, value: r.text(path, value) or None,
            {"type": "string", "pattern": "^((rediss?|unix)://.*)?$"},
            "Redis URL",
            "redis://redis:6379/0",
        ),
        "The shared Redis (empty: each sidecar counts alone).",
        example="${EDGEPROXY_SHARED_REDIS_URL:-}",
    )
    prefix: str = setting("edgeproxy", NAME, "Prefix of every key.")
    timeout: float = setting(
        0.2, POSITIVE_DURATION, "Each call on the request path; then on_redis_error applies."
    )
    cluster: bool = setting(  # url names one node of a Redis Cluster
        False, BOOLEAN, "url names one node of a Redis Cluster."
    )


def _pii_kinds(r: Reader, path: str, value: Any) -> tuple[str, ...]:
    kinds = r.names(path, value)
    for kind in kinds:
        if kind not in PII_KINDS:
            r.fail(path, f"unknown kind {show(kind)} (known: {', '.join(PII_KINDS)})")
    return kinds


@dataclass(frozen=True, slots=True)
class PiiRule:
    mode: str = setting(
        "redact", choice(("redact", "block", "monitor")), "What is done with what it finds."
    )
    kinds: tuple[str, ...] = setting(
        PII_KINDS,
        Kind(
            _pii_kinds,
            {
                "anyOf": [
                    {"enum": list(PII_KINDS)},
                    {"type": "array", "items": {"enum": list(PII_KINDS)}},
                ]
            },
            "list of " + " | ".join(PII_KINDS),
            ["email", "phone"],
            list,
        ),
        "The kinds of personal data looked for.",
    )


@dataclass(frozen=True, slots=True)
class AnswerPiiRule(PiiRule):
    """Personal data in answers: redacted or monitored (by the time a stream shows a value,
    what came before it has been sent, so an answer is never blocked)."""

    mode: str = setting("redact", choice(("redact", "monitor")), "What is done with it.")


@dataclass(frozen=True, slots=True)
class InjectionRule:
    mode: str = setting("block", choice(("block", "monitor")), "What a detection does.")
    threshold: float = setting(0.5, FRACTION, "Score from which a prompt counts as injection.")
    classifier: bool = setting(  # also the embedding classifier, noted off the request path
        False,
        BOOLEAN,
        "Also note what an embedding classifier flags, off the request path (semantic extra).",
    )
    remember_clean: int = setting(  # texts found clean, not screened again (0: every time)
        16384, WHOLE, "Texts found clean that are not screened again (0: screen every time)."
    )


def _injection(r: Reader, raw: Any, path: str) -> InjectionRule | None:
    if raw is None:
        return None
    rule = read(r, InjectionRule, raw, path)
    absent = missing(SEMANTIC_PACKAGES) if rule.classifier else []
    if absent:
        r.fail(
            f"{path}.classifier",
            f"needs the {SEMANTIC} extra (pip install 'edgeproxy[{SEMANTIC}]'); "
            f"missing: {', '.join(absent)}",
        )
    return rule


def _patterns(r: Reader, path: str, value: Any) -> tuple[str, ...]:
    patterns = r.names(path, value)
    for i, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            r.fail(f"{path}[{i}]", f"not a valid regular expression: {exc}")
    return patterns


@dataclass(frozen=True, slots=True)
class BlocklistRule:
    mode: str = setting("block", choice(RULE_MODES), "What a match does.")
    terms: tuple[str, ...] = setting(
        (), NAMES, "Terms matched as words, case-insensitively.", example=["Project Falcon"]
    )
    patterns: tuple[str, ...] = setting(
        (),
        Kind(_patterns, NAMES.json, "list of regular expressions", [r"\bACME-\d{4}\b"], list),
        "Regular expressions.",
    )


def _blocklist(r: Reader, raw: Any, path: str) -> BlocklistRule | None:
    if raw is None:
        return None
    rule = read(r, BlocklistRule, raw, path)
    if not rule.terms and not rule.patterns:
        r.fail(path, "give terms, patterns or both")
    return rule


@dataclass(frozen=True, slots=True)
class ShieldSettings:
    url: str = required(
        url(), "The guard's endpoint (contract: docs/shield.md).", example="http://shield:8000/v1"
    )
    token: Secret | None = secret("Sent as Authorization: Bearer.")
    timeout: float = setting(0.1, POSITIVE_DURATION, "The longest a check may take.")
    mode: str = setting(
        "blocking",
        choice(SHIELD_MODES),
        "blocking, monitoring, or audit (off the request path).",
    )
    fail_open: bool = setting(  # a guard that cannot answer refuses, as Envoy's ext_authz does
        False, BOOLEAN, "Admit requests when the guard cannot answer (default: refuse)."
    )
    screen_output: bool = setting(False, BOOLEAN, "Also check answers.", key="output")


@dataclass(frozen=True, slots=True)
class Policy:
    """What one guardrail policy screens, and how: each rule blocks, redacts or monitors."""

    name: str
    pii: PiiRule | None = optional_section(PiiRule, "Personal data in prompts.")
    injection: InjectionRule | None = optional_section(
        InjectionRule, "Prompt injection.", parse=_injection
    )
    blocklist: BlocklistRule | None = optional_section(
        BlocklistRule, "Terms and patterns that may not be sent.", parse=_blocklist
    )
    output: PiiRule | None = optional_section(AnswerPiiRule, "Personal data in answers.")
    shield: ShieldSettings | None = optional_section(
        ShieldSettings, "An external guard (docs/shield.md)."
    )
    max_messages: int | None = setting(None, COUNT, "Messages a request may hold.", example=200)
    max_prompt_chars: int | None = setting(
        None, COUNT, "Characters a prompt may hold.", example=400000
    )


@dataclass(frozen=True, slots=True)
class GuardrailsConfig:
    policies: Mapping[str, Policy] = setting(
        {},
        MapOf(
            Section(Policy), NAME, "policy name to rules", name_into="name", example_key="strict"
        ),
        "Guardrail policies by name.",
    )
    default_policy: str | None = setting(
        None, NONEMPTY_TEXT, "The policy of requests no key or route names.", example="strict"
    )
    routes: Mapping[str, str] = setting(  # operation label -> policy
        {},
        Kind(
            lambda r, path, value: r.string_map(path, value),
            {"type": "object", "propertyNames": {"enum": list(OPERATION_LABELS)}},
            "mapping of route to policy",
            {"messages": "strict"},
            dict,
        ),
        "A policy per route: " + ", ".join(OPERATION_LABELS) + ".",
    )
    audit_log: str | None = setting(  # a JSONL file, or "-" for standard output
        None,
        NONEMPTY_TEXT,
        'A JSONL file of guardrail decisions, or "-" for standard output.',
        example="/var/log/edgeproxy/audit.jsonl",
    )


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    auth: AuthConfig = section(AuthConfig, "Callers and their virtual keys.")
    limits: LimitsConfig = section(LimitsConfig, "Rate limits per model group.")
    budgets: BudgetsConfig = section(BudgetsConfig, "Budgets of keys and teams.")
    pricing: PricingConfig = section(PricingConfig, "Prices per million tokens.")
    guardrails: GuardrailsConfig = section(
        GuardrailsConfig, "Screening requests and answers (docs/guardrails.md)."
    )
    redis: SharedState = section(
        SharedState, "The Redis replicas share keys, rate limits and spend through."
    )


def parse_security(r: Reader, top: Mapping[str, Any], groups: frozenset[str]) -> SecurityConfig:
    """The tenancy and guardrail sections of the document `top`; `groups`: the model groups
    configured, which keys and group limits may name."""
    redis = _shared_state(r, top.get("redis"))
    guardrails = _guardrails(r, top.get("guardrails"))
    auth = _auth(r, top.get("auth"), groups, guardrails.policies)
    limits = _limits(r, top.get("limits"), groups)
    budgets = read(r, BudgetsConfig, top.get("budgets"), "budgets")
    if auth.redis_keys and redis.url is None:
        r.fail("auth.redis_keys", "needs redis.url (the Redis the keys are kept in)")
    return SecurityConfig(
        auth=auth,
        limits=limits,
        budgets=budgets,
        pricing=_pricing(r, top.get("pricing")),
        guardrails=guardrails,
        redis=redis,
    )


def parse_key(
    r: Reader, raw: Any, path: str, groups: frozenset[str], policies: Mapping[str, Policy]
) -> KeySettings | None:
    """One key at `path`: from the configuration, or created through the admin API."""
    s = check_keys(r, KeySettings, raw, path)
    if not s:
        r.fail(path, f"expected a key with at least id and hash, got {show(raw)}")
        return None
    key = KeySettings(**read_checked(r, KeySettings, s, path))
    for name in sorted(key.models or ()):
        if name not in groups:
            r.fail(f"{path}.models", f"no model group named {show(name)}")
    if key.policy is not None and key.policy not in policies:
        r.fail(f"{path}.policy", f"no guardrails policy named {show(key.policy)}")
    return key


def _auth(
    r: Reader, raw: Any, groups: frozenset[str], policies: Mapping[str, Policy]
) -> AuthConfig:
    path = "auth"
    s = check_keys(r, AuthConfig, raw, path)
    values = read_checked(r, AuthConfig, s, path, skip=("keys",))
    items = s.get("keys") or []
    if not isinstance(items, list):
        r.fail(f"{path}.keys", f"expected a list of keys, got {show(items)}")
        items = []
    keys = [
        parse_key(r, item, f"{path}.keys[{i}]", groups, policies) for i, item in enumerate(items)
    ]
    found = tuple(k for k in keys if k is not None)
    _check_unique(r, found)
    auth = AuthConfig(keys=found, **values)
    if auth.mode == "keys" and not found and not auth.redis_keys:
        r.fail(f"{path}.keys", "mode keys needs at least one key (or redis_keys: true)")
    if auth.mode == "none" and (found or auth.redis_keys):
        r.fail(f"{path}.mode", "keys are configured but mode is none: set mode: keys")
    return auth


def _check_unique(r: Reader, keys: tuple[KeySettings, ...]) -> None:
    ids: set[str] = set()
    digests: set[str] = set()
    for i, key in enumerate(keys):
        if key.id in ids:
            r.fail(f"auth.keys[{i}].id", f"{show(key.id)} is used by another key")
        if key.digest and key.digest in digests:
            r.fail(f"auth.keys[{i}].hash", "the same key is configured twice")
        ids.add(key.id)
        digests.add(key.digest)


def _limits(r: Reader, raw: Any, groups: frozenset[str]) -> LimitsConfig:
    path = "limits"
    limits = read(r, LimitsConfig, raw, path)
    for name in limits.groups:
        if name not in groups:
            r.fail(f"{path}.groups.{name}", "no model group of this name")
    if limits.local_share == 0:
        r.fail(f"{path}.local_share", "must be > 0 (use on_redis_error: closed to refuse all)")
    if limits.tokenizer == "tiktoken" and missing(("tiktoken",)):
        r.fail(f"{path}.tokenizer", "tiktoken is not installed (pip install tiktoken)")
    return limits


def _pricing(r: Reader, raw: Any) -> PricingConfig:
    """Loaded and checked now, so a bad price stops the load with its field named."""
    values = read_values(r, PricingConfig, raw, "pricing")
    file, overrides = values["file"], values["overrides"]
    if overrides is not None and not isinstance(overrides, dict):
        r.fail("pricing.overrides", f"expected a mapping of sections, got {show(overrides)}")
        overrides = None
    try:
        table = load_pricing(overrides, file)
    except ConfigError as err:
        r.problems += err.problems
        return PricingConfig(file=file)
    return PricingConfig(table=table, file=file)


def _shared_state(r: Reader, raw: Any) -> SharedState:
    path = "redis"
    state = read(r, SharedState, raw, path)
    if state.url is not None and not re.match(r"^(rediss?|unix)://", state.url):
        r.fail(f"{path}.url", "expected a redis://, rediss:// or unix:// URL")
    if state.cluster and state.url is not None and state.url.startswith("unix://"):
        r.fail(f"{path}.url", "a Redis Cluster is reached over TCP: give one node's redis:// URL")
    return state


def _guardrails(r: Reader, raw: Any) -> GuardrailsConfig:
    path = "guardrails"
    guardrails = read(r, GuardrailsConfig, raw, path)
    policies = guardrails.policies
    if guardrails.default_policy is not None and guardrails.default_policy not in policies:
        r.fail(f"{path}.default_policy", f"no policy named {show(guardrails.default_policy)}")
    for label, policy in guardrails.routes.items():
        if label not in OPERATION_LABELS:
            r.fail(
                f"{path}.routes.{label}", f"unknown route (known: {', '.join(OPERATION_LABELS)})"
            )
        if policy not in policies:
            r.fail(f"{path}.routes.{label}", f"no policy named {show(policy)}")
    return guardrails
