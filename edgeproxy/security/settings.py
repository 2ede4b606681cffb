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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from edgeproxy.config_reader import ConfigError, Reader, Secret, show
from edgeproxy.extras import SEMANTIC, SEMANTIC_PACKAGES, missing
from edgeproxy.pricing import PricingTable, load_pricing

AUTH_MODES = ("none", "keys")
BACKEND_POLICIES = ("local", "open", "closed")
PII_KINDS = ("email", "phone", "credit_card", "iban", "ssn", "ip", "secret")
RULE_MODES = ("block", "redact", "monitor")
SHIELD_MODES = ("blocking", "monitoring", "audit")
OPERATION_LABELS = ("chat", "completions", "embeddings", "messages", "count_tokens")
_DIGEST = re.compile(r"(?:sha256:)?([0-9a-f]{64})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Requests and tokens per minute, and requests in flight; None: no limit."""

    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None

    def __bool__(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.parallel is not None


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """US dollars per UTC day and per UTC month; None: no budget."""

    daily_usd: float | None = None
    monthly_usd: float | None = None

    def __bool__(self) -> bool:
        return self.daily_usd is not None or self.monthly_usd is not None


@dataclass(frozen=True, slots=True)
class KeySettings:
    """A virtual key as the operator configured it; only the SHA-256 of the key is kept."""

    id: str
    digest: str  # 64 lower-case hex digits
    team: str | None = None
    models: frozenset[str] | None = None  # None: every model group
    limits: LimitSettings = LimitSettings()
    budget: BudgetSettings = BudgetSettings()
    cache_namespace: str | None = None
    policy: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def tenant(self) -> str:
        """The cache namespace of its answers: keys of one tenant share them, no one else."""
        return self.cache_namespace or self.team or self.id


@dataclass(frozen=True, slots=True)
class TeamSettings:
    limits: LimitSettings = LimitSettings()
    budget: BudgetSettings = BudgetSettings()


@dataclass(frozen=True, slots=True)
class AuthConfig:
    mode: Literal["none", "keys"] = "none"
    keys: tuple[KeySettings, ...] = ()
    teams: Mapping[str, TeamSettings] = field(default_factory=dict)
    redis_keys: bool = False


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Limits per model group (every caller together) and what happens when Redis fails:
    `local` keeps counting in this process on `local_share` of each limit, `open` lets
    requests through, `closed` refuses them."""

    groups: Mapping[str, LimitSettings] = field(default_factory=dict)
    on_redis_error: Literal["local", "open", "closed"] = "local"
    local_share: float = 1.0
    # How a request's prompt tokens are estimated for TPM: characters / 4, or counted by
    # tiktoken (installed separately; it loads its encoding at start, from its cache
    # directory, TIKTOKEN_CACHE_DIR, or the network; failing that, the heuristic applies).
    tokenizer: Literal["heuristic", "tiktoken"] = "heuristic"


@dataclass(frozen=True, slots=True)
class BudgetsConfig:
    on_redis_error: Literal["open", "closed"] = "open"


@dataclass(frozen=True, slots=True)
class PricingConfig:
    """The price table: the embedded one, then an operator's file, then inline entries."""

    table: PricingTable = field(default_factory=load_pricing)
    file: str | None = None


@dataclass(frozen=True, slots=True)
class SharedState:
    """The Redis that replicas share keys, limits and spend through (None: this process)."""

    url: str | None = None
    prefix: str = "edgeproxy"
    timeout: float = 0.2
    cluster: bool = False  # url names one node of a Redis Cluster


@dataclass(frozen=True, slots=True)
class PiiRule:
    mode: str
    kinds: tuple[str, ...] = PII_KINDS


@dataclass(frozen=True, slots=True)
class InjectionRule:
    mode: str
    threshold: float = 0.5
    classifier: bool = False  # also the embedding classifier, noted off the request path
    remember_clean: int = 16384  # texts found clean, not screened again (0: screen every time)


@dataclass(frozen=True, slots=True)
class BlocklistRule:
    mode: str
    terms: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ShieldSettings:
    url: str
    token: Secret | None = None
    timeout: float = 0.1
    mode: str = "blocking"
    fail_open: bool = False  # a guard that cannot answer refuses, as Envoy's ext_authz does
    screen_output: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    """What one guardrail policy screens, and how: each rule blocks, redacts or monitors."""

    name: str
    pii: PiiRule | None = None
    injection: InjectionRule | None = None
    blocklist: BlocklistRule | None = None
    output: PiiRule | None = None
    shield: ShieldSettings | None = None
    max_messages: int | None = None
    max_prompt_chars: int | None = None


@dataclass(frozen=True, slots=True)
class GuardrailsConfig:
    policies: Mapping[str, Policy] = field(default_factory=dict)
    default_policy: str | None = None
    routes: Mapping[str, str] = field(default_factory=dict)  # operation label -> policy
    audit_log: str | None = None  # a JSONL file, or "-" for standard output


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    auth: AuthConfig = AuthConfig()
    limits: LimitsConfig = LimitsConfig()
    budgets: BudgetsConfig = BudgetsConfig()
    pricing: PricingConfig = PricingConfig()
    guardrails: GuardrailsConfig = GuardrailsConfig()
    redis: SharedState = SharedState()


SECTIONS = ("auth", "limits", "budgets", "pricing", "guardrails", "redis")


def parse_security(r: Reader, top: Mapping[str, Any], groups: frozenset[str]) -> SecurityConfig:
    """The tenancy and guardrail sections of the document `top`; `groups`: the model groups
    configured, which keys and group limits may name."""
    redis = _shared_state(r, top.get("redis"))
    guardrails = _guardrails(r, top.get("guardrails"))
    auth = _auth(r, top.get("auth"), groups, guardrails.policies)
    limits = _limits(r, top.get("limits"), groups)
    budgets = _budgets(r, top.get("budgets"))
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


def _named(r: Reader) -> Callable[[str, Any], str]:
    """A parser of names (ids, teams, namespaces): what goes into Redis keys and log fields."""

    def parse(path: str, value: Any) -> str:
        text = r.nonempty_text(path, value)
        if text and not _NAME.fullmatch(text):
            r.fail(path, f"expected letters, digits and _.:- (at most 128), got {show(text)}")
        return text

    return parse


def _mapping(r: Reader, s: dict[str, Any], path: str, key: str, what: str) -> dict[Any, Any]:
    """`s[key]`, a mapping of `what` (empty when absent or not a mapping, which is reported)."""
    value = s.get(key) or {}
    if not isinstance(value, dict):
        r.fail(f"{path}.{key}", f"expected a mapping of {what}, got {show(value)}")
        return {}
    return value


def _limit_settings(r: Reader, raw: Any, path: str) -> LimitSettings:
    s = r.section(raw, path, ("rpm", "tpm", "parallel"))
    return LimitSettings(
        rpm=r.get(s, path, "rpm", r.count, None),
        tpm=r.get(s, path, "tpm", r.count, None),
        parallel=r.get(s, path, "parallel", r.count, None),
    )


def _budget_settings(r: Reader, raw: Any, path: str) -> BudgetSettings:
    s = r.section(raw, path, ("daily_usd", "monthly_usd"))
    return BudgetSettings(
        daily_usd=r.get(s, path, "daily_usd", r.positive_number, None),
        monthly_usd=r.get(s, path, "monthly_usd", r.positive_number, None),
    )


def _digests(r: Reader) -> Callable[[str, Any], str]:
    def parse(path: str, value: Any) -> str:
        match = _DIGEST.fullmatch(r.text(path, value).strip().lower())
        if match is None:
            r.fail(
                path,
                "expected sha256:<64 hex digits> as printed by `edgeproxy hash-key` "
                "(the key itself never goes in the configuration)",
            )
            return ""
        return match.group(1)

    return parse


def parse_key(
    r: Reader, raw: Any, path: str, groups: frozenset[str], policies: Mapping[str, Policy]
) -> KeySettings | None:
    """One key at `path`: from the configuration, or created through the admin API."""
    s = r.section(
        raw,
        path,
        (
            "id",
            "hash",
            "team",
            "models",
            "limits",
            "budget",
            "cache_namespace",
            "policy",
            "metadata",
        ),
    )
    if not s:
        r.fail(path, f"expected a key with at least id and hash, got {show(raw)}")
        return None
    models = r.get(s, path, "models", r.names, None)
    for name in models or ():
        if name not in groups:
            r.fail(f"{path}.models", f"no model group named {show(name)}")
    policy = r.get(s, path, "policy", r.nonempty_text, None)
    if policy is not None and policy not in policies:
        r.fail(f"{path}.policy", f"no guardrails policy named {show(policy)}")
    return KeySettings(
        id=r.get(s, path, "id", _named(r)),
        digest=r.get(s, path, "hash", _digests(r)),
        team=r.get(s, path, "team", _named(r), None),
        models=frozenset(models) if models is not None else None,
        limits=_limit_settings(r, s.get("limits"), f"{path}.limits"),
        budget=_budget_settings(r, s.get("budget"), f"{path}.budget"),
        cache_namespace=r.get(s, path, "cache_namespace", _named(r), None),
        policy=policy,
        metadata=r.get(s, path, "metadata", r.string_map, {}),
    )


def _auth(
    r: Reader, raw: Any, groups: frozenset[str], policies: Mapping[str, Policy]
) -> AuthConfig:
    path = "auth"
    s = r.section(raw, path, ("mode", "keys", "teams", "redis_keys"))
    mode = r.get(s, path, "mode", r.choice(AUTH_MODES), "none")
    items = s.get("keys") or []
    if not isinstance(items, list):
        r.fail(f"{path}.keys", f"expected a list of keys, got {show(items)}")
        items = []
    keys = [
        parse_key(r, item, f"{path}.keys[{i}]", groups, policies) for i, item in enumerate(items)
    ]
    found = tuple(k for k in keys if k is not None)
    _check_unique(r, found)
    teams_raw = _mapping(r, s, path, "teams", "team name to settings")
    teams = {}
    for name, entry in teams_raw.items():
        where = f"{path}.teams.{name}"
        _named(r)(where, name)
        t = r.section(entry, where, ("limits", "budget"))
        teams[str(name)] = TeamSettings(
            limits=_limit_settings(r, t.get("limits"), f"{where}.limits"),
            budget=_budget_settings(r, t.get("budget"), f"{where}.budget"),
        )
    redis_keys = r.get(s, path, "redis_keys", r.boolean, False)
    if mode == "keys" and not found and not redis_keys:
        r.fail(f"{path}.keys", "mode keys needs at least one key (or redis_keys: true)")
    if mode == "none" and (found or redis_keys):
        r.fail(f"{path}.mode", "keys are configured but mode is none: set mode: keys")
    return AuthConfig(
        mode="keys" if mode == "keys" else "none",
        keys=found,
        teams=teams,
        redis_keys=redis_keys,
    )


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
    s = r.section(raw, path, ("groups", "on_redis_error", "local_share", "tokenizer"))
    per_group = _mapping(r, s, path, "groups", "model group to limits")
    parsed = {}
    for name, entry in per_group.items():
        if name not in groups:
            r.fail(f"{path}.groups.{name}", "no model group of this name")
        parsed[str(name)] = _limit_settings(r, entry, f"{path}.groups.{name}")
    policy = r.get(s, path, "on_redis_error", r.choice(BACKEND_POLICIES), "local")
    share = r.get(s, path, "local_share", r.fraction, 1.0)
    if share == 0:
        r.fail(f"{path}.local_share", "must be > 0 (use on_redis_error: closed to refuse all)")
    tokenizer = r.get(s, path, "tokenizer", r.choice(("heuristic", "tiktoken")), "heuristic")
    if tokenizer == "tiktoken" and missing(("tiktoken",)):
        r.fail(f"{path}.tokenizer", "tiktoken is not installed (pip install tiktoken)")
    return LimitsConfig(
        groups=parsed,
        on_redis_error=policy,  # type: ignore[arg-type]
        local_share=share,
        tokenizer="tiktoken" if tokenizer == "tiktoken" else "heuristic",
    )


def _budgets(r: Reader, raw: Any) -> BudgetsConfig:
    s = r.section(raw, "budgets", ("on_redis_error",))
    policy = r.get(s, "budgets", "on_redis_error", r.choice(("open", "closed")), "open")
    return BudgetsConfig(on_redis_error="closed" if policy == "closed" else "open")


def _pricing(r: Reader, raw: Any) -> PricingConfig:
    """Loaded and checked now, so a bad price stops the load with its field named."""
    s = r.section(raw, "pricing", ("file", "overrides"))
    file = r.get(s, "pricing", "file", r.readable_file, None)
    overrides = s.get("overrides")
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
    s = r.section(raw, path, ("url", "prefix", "timeout", "cluster"))
    url = r.get(s, path, "url", r.text, "") or None
    if url is not None and not re.match(r"^(rediss?|unix)://", url):
        r.fail(f"{path}.url", "expected a redis://, rediss:// or unix:// URL")
    cluster = r.get(s, path, "cluster", r.boolean, False)
    if cluster and url is not None and url.startswith("unix://"):
        r.fail(f"{path}.url", "a Redis Cluster is reached over TCP: give one node's redis:// URL")
    return SharedState(
        url=url,
        prefix=r.get(s, path, "prefix", _named(r), "edgeproxy"),
        timeout=r.get(s, path, "timeout", r.positive_duration, 0.2),
        cluster=cluster,
    )


def _rule_mode(r: Reader, s: dict[str, Any], path: str, allowed: tuple[str, ...]) -> str:
    return r.get(s, path, "mode", r.choice(allowed), allowed[0])


def _pii(
    r: Reader, raw: Any, path: str, modes: tuple[str, ...] = ("redact", "block", "monitor")
) -> PiiRule | None:
    """Personal data in prompts (redact, block or monitor), or in answers (redact or
    monitor: by the time a stream shows a value, what came before it has been sent)."""
    if raw is None:
        return None
    s = r.section(raw, path, ("mode", "kinds"))
    kinds = r.get(s, path, "kinds", r.names, PII_KINDS)
    for kind in kinds:
        if kind not in PII_KINDS:
            r.fail(f"{path}.kinds", f"unknown kind {show(kind)} (known: {', '.join(PII_KINDS)})")
    return PiiRule(mode=_rule_mode(r, s, path, modes), kinds=kinds)


def _injection(r: Reader, raw: Any, path: str) -> InjectionRule | None:
    if raw is None:
        return None
    s = r.section(raw, path, ("mode", "threshold", "classifier", "remember_clean"))
    classifier = r.get(s, path, "classifier", r.boolean, False)
    absent = missing(SEMANTIC_PACKAGES) if classifier else []
    if absent:
        r.fail(
            f"{path}.classifier",
            f"needs the {SEMANTIC} extra (pip install 'edgeproxy[{SEMANTIC}]'); "
            f"missing: {', '.join(absent)}",
        )
    return InjectionRule(
        mode=_rule_mode(r, s, path, ("block", "monitor")),
        threshold=r.get(s, path, "threshold", r.fraction, 0.5),
        classifier=classifier,
        remember_clean=r.get(s, path, "remember_clean", r.whole, 16384),
    )


def _blocklist(r: Reader, raw: Any, path: str) -> BlocklistRule | None:
    if raw is None:
        return None
    s = r.section(raw, path, ("mode", "terms", "patterns"))
    patterns = r.get(s, path, "patterns", r.names, ())
    for i, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            r.fail(f"{path}.patterns[{i}]", f"not a valid regular expression: {exc}")
    rule = BlocklistRule(
        mode=_rule_mode(r, s, path, RULE_MODES),
        terms=r.get(s, path, "terms", r.names, ()),
        patterns=patterns,
    )
    if not rule.terms and not rule.patterns:
        r.fail(path, "give terms, patterns or both")
    return rule


def _shield(r: Reader, raw: Any, path: str) -> ShieldSettings | None:
    if raw is None:
        return None
    s = r.section(
        raw, path, ("url", "token", "token_file", "timeout", "mode", "fail_open", "output")
    )
    return ShieldSettings(
        url=r.get(s, path, "url", r.url),
        token=r.secret(s, path, "token"),
        timeout=r.get(s, path, "timeout", r.positive_duration, 0.1),
        mode=r.get(s, path, "mode", r.choice(SHIELD_MODES), "blocking"),
        fail_open=r.get(s, path, "fail_open", r.boolean, False),
        screen_output=r.get(s, path, "output", r.boolean, False),
    )


def _policy(r: Reader, name: str, raw: Any, path: str) -> Policy:
    s = r.section(
        raw,
        path,
        ("pii", "injection", "blocklist", "output", "shield", "max_messages", "max_prompt_chars"),
    )
    return Policy(
        name=name,
        pii=_pii(r, s.get("pii"), f"{path}.pii"),
        injection=_injection(r, s.get("injection"), f"{path}.injection"),
        blocklist=_blocklist(r, s.get("blocklist"), f"{path}.blocklist"),
        output=_pii(r, s.get("output"), f"{path}.output", ("redact", "monitor")),
        shield=_shield(r, s.get("shield"), f"{path}.shield"),
        max_messages=r.get(s, path, "max_messages", r.count, None),
        max_prompt_chars=r.get(s, path, "max_prompt_chars", r.count, None),
    )


def _guardrails(r: Reader, raw: Any) -> GuardrailsConfig:
    path = "guardrails"
    s = r.section(raw, path, ("policies", "default_policy", "routes", "audit_log"))
    entries = _mapping(r, s, path, "policies", "policy name to rules")
    policies = {}
    for name, entry in entries.items():
        where = f"{path}.policies.{name}"
        policies[str(name)] = _policy(r, _named(r)(where, name), entry, where)
    default = r.get(s, path, "default_policy", r.nonempty_text, None)
    if default is not None and default not in policies:
        r.fail(f"{path}.default_policy", f"no policy named {show(default)}")
    routes = r.get(s, path, "routes", r.string_map, {})
    for label, policy in routes.items():
        if label not in OPERATION_LABELS:
            r.fail(
                f"{path}.routes.{label}", f"unknown route (known: {', '.join(OPERATION_LABELS)})"
            )
        if policy not in policies:
            r.fail(f"{path}.routes.{label}", f"no policy named {show(policy)}")
    return GuardrailsConfig(
        policies=policies,
        default_policy=default,
        routes=routes,
        audit_log=r.get(s, path, "audit_log", r.nonempty_text, None),
    )
