"""Tenancy and guardrails built from the configuration: the stages, and what they hold open.

Only what the configuration enables is built: with `auth.mode: none`, no budgets, limits or
policies, the pipeline has none of these stages and the request path costs nothing more.
The shared Redis (the top-level `redis:` section) is connected only when it is configured, and
redis-py is imported only then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from edgeproxy.background import Background
from edgeproxy.config import Config
from edgeproxy.exchange import Stage
from edgeproxy.security.audit import AuditLog, DecisionCounter
from edgeproxy.security.auth import Authenticate, Keyring
from edgeproxy.security.blocklist import Blocklist
from edgeproxy.security.budgets import Budgets, LocalBudgets
from edgeproxy.security.injection import InjectionRules
from edgeproxy.security.injection_classifier import InjectionClassifier
from edgeproxy.security.limits import AdmitLimits
from edgeproxy.security.pii import Detector
from edgeproxy.security.ratelimit import Limiter, LocalLimiter, TokenCounter, tiktoken_counter
from edgeproxy.security.screen import INJECTION_WINDOW, RULES, CompiledPolicy, Screen
from edgeproxy.security.seen import CleanTexts
from edgeproxy.security.shield import ShieldClient
from edgeproxy.security.spend import CheckBudget
from edgeproxy.telemetry.record import Costing

if TYPE_CHECKING:
    from redis.asyncio import Redis, RedisCluster

    from edgeproxy.security.keystore import RedisKeyStore

log = logging.getLogger("edgeproxy.security")
_T = TypeVar("_T")


@dataclass(eq=False)
class Guards:
    """The stages before and after routing, and the resources they use."""

    before_route: tuple[Stage, ...] = ()
    after_route: tuple[Stage, ...] = ()
    budgets: Budgets | None = None
    decisions: DecisionCounter | None = None
    audit: AuditLog | None = None
    shields: tuple[ShieldClient, ...] = ()
    classifier: InjectionClassifier | None = None
    limiter: Limiter | None = None
    limits: AdmitLimits | None = None  # the stages, for their refusal counts
    spend: CheckBudget | None = None
    screen: Screen | None = None  # the stage, for telemetry events of its decisions
    authenticate: Authenticate | None = None  # who presents a request that is no API call
    keep_leases: Callable[[], Coroutine[Any, Any, None]] | None = None
    redis: Redis | RedisCluster | None = None
    keys: RedisKeyStore | None = None
    _services: list[asyncio.Task[None]] = field(default_factory=list)

    async def open(self, background: Background) -> None:
        """Before the first request: a first connection to the shared Redis (so the first
        burst of requests does not pay for it), the key store's listener, the limiter's
        leases kept."""
        if self.redis is not None:
            from edgeproxy.security.shared_redis import warm

            await warm(self.redis)
        if self.keys is not None:
            self.keys.listen(background)
        if self.audit is not None:
            await self.audit.open(background)
        if self.classifier is not None:
            await self.classifier.load()
        await asyncio.gather(*(shield.open() for shield in self.shields))
        if self.keep_leases is not None:
            self._services.append(background.service("rate limit leases", self.keep_leases()))

    async def stop_listening(self) -> None:
        """At shutdown, before background work drains: the key store's listener."""
        if self.keys is not None:
            await self.keys.close()

    async def close(self) -> None:
        """After in-flight requests and background work: services, the shared Redis client."""
        for task in self._services:
            task.cancel()
        await asyncio.gather(*self._services, return_exceptions=True)
        self._services.clear()
        await asyncio.gather(*(shield.close() for shield in self.shields))
        if self.audit is not None:
            await self.audit.close()
        if self.redis is not None:
            await self.redis.aclose()


def build_guards(
    config: Config,
    background: Background,
    costing: Costing,
    wall_clock: Callable[[], float] = time.time,
    clock: Callable[[], float] = time.monotonic,
    *,
    previous: Guards | None = None,
) -> Guards:
    """What `config` enables of tenancy and guardrails. `previous`: the guards a configuration
    reload replaces, whose in-process rate-limit windows and budget spend carry over."""
    security = config.security
    auth = security.auth
    guards = Guards(redis=_shared_redis(config))
    if auth.redis_keys and guards.redis is not None:
        guards.keys = _key_store(config, guards.redis, clock)
    screen = _screen(config, guards, background)
    guards.limiter, guards.keep_leases = _limiter(config, guards.redis, clock)
    if previous is not None and isinstance(guards.limiter, LocalLimiter):
        guards.limiter = _same_kind(previous.limiter, guards.limiter)
    if guards.limiter is not None:
        teams = {name: team.limits for name, team in auth.teams.items()}
        limits = AdmitLimits(
            guards.limiter, security.limits.groups, teams, background, _tokenizer(config)
        )
        guards.after_route += (limits,)
        guards.limits = limits
    if auth.mode == "none":
        guards.after_route += screen
        return guards
    guards.authenticate = Authenticate(Keyring(auth.keys), guards.keys)
    guards.before_route = (guards.authenticate,)
    budgeted = any(key.budget for key in auth.keys) or any(
        team.budget for team in auth.teams.values()
    )
    if budgeted or auth.redis_keys:
        guards.budgets = _budgets(config, guards.redis, wall_clock)
        if previous is not None and isinstance(guards.budgets, LocalBudgets):
            guards.budgets = _same_kind(previous.budgets, guards.budgets)
        stage = CheckBudget(guards.budgets, costing, auth.teams, background)
        guards.after_route += (stage,)
        guards.spend = stage
    guards.after_route += screen
    return guards


def _same_kind(previous: object, built: _T) -> _T:
    """The previous in-process store when it is of the kind just built (its windows or spend
    go on across a reload), else the one built."""
    return previous if isinstance(previous, type(built)) else built


def _screen(config: Config, guards: Guards, background: Background) -> tuple[Stage, ...]:
    """The screening stage when some guardrail policy exists, its decision counter, audit
    log and Shield clients kept on `guards` for the lifecycle and the metrics."""
    guardrails = config.security.guardrails
    if not guardrails.policies:
        return ()
    guards.decisions = DecisionCounter(RULES)
    if guardrails.audit_log is not None:
        guards.audit = AuditLog(guardrails.audit_log)
    injection: dict[float, InjectionRules] = {}  # 75 patterns: compiled once per threshold
    shields: list[ShieldClient] = []
    compiled = {}
    for name, policy in guardrails.policies.items():
        shield = None
        if policy.shield is not None:
            settings = policy.shield
            shield = ShieldClient(
                settings.url,
                background=background,
                counter=guards.decisions,
                audit=guards.audit,
                mode=settings.mode,  # type: ignore[arg-type]
                timeout=settings.timeout,
                fail_open=settings.fail_open,
                token=settings.token.reveal() if settings.token is not None else None,
            )
            shields.append(shield)
        rules = None
        if policy.injection is not None:
            threshold = policy.injection.threshold
            rules = injection.get(threshold) or injection.setdefault(
                threshold, InjectionRules(threshold, window=INJECTION_WINDOW)
            )
        classifier = None
        if policy.injection is not None and policy.injection.classifier:
            classifier = guards.classifier = guards.classifier or InjectionClassifier()
        compiled[name] = CompiledPolicy(
            name=name,
            max_messages=policy.max_messages,
            max_prompt_chars=policy.max_prompt_chars,
            blocklist=Blocklist(policy.blocklist.terms, policy.blocklist.patterns)
            if policy.blocklist is not None
            else None,
            blocklist_mode=policy.blocklist.mode if policy.blocklist is not None else "block",
            injection=rules,
            clean=CleanTexts(policy.injection.remember_clean if policy.injection else 0),
            classifier=classifier,
            injection_mode=policy.injection.mode if policy.injection is not None else "block",
            pii=Detector(policy.pii.kinds) if policy.pii is not None else None,
            pii_mode=policy.pii.mode if policy.pii is not None else "redact",
            output=Detector(policy.output.kinds) if policy.output is not None else None,
            output_mode=policy.output.mode if policy.output is not None else "redact",
            shield=shield,
            shield_output=policy.shield is not None and policy.shield.screen_output,
        )
    guards.shields = tuple(shields)
    stage = Screen(
        compiled,
        guardrails.routes,
        guardrails.default_policy,
        guards.decisions,
        audit=guards.audit,
        background=background,
    )
    guards.screen = stage
    return (stage,)


def _shared_redis(config: Config) -> Redis | RedisCluster | None:
    if config.security.redis.url is None:
        return None
    from edgeproxy.security.shared_redis import connect

    return connect(config.security.redis)


def _key_store(
    config: Config, client: Redis | RedisCluster, clock: Callable[[], float]
) -> RedisKeyStore:
    """The keys kept in Redis (`auth.redis_keys`), checked against this configuration."""
    from edgeproxy.security.key_records import KeyRules
    from edgeproxy.security.keystore import RedisKeyStore

    security = config.security
    rules = KeyRules(
        groups=frozenset(model.name for model in config.models),
        policies=security.guardrails.policies,
        configured_ids=frozenset(key.id for key in security.auth.keys),
    )
    return RedisKeyStore(client, security.redis, rules, clock=clock)


def _tokenizer(config: Config) -> TokenCounter | None:
    """tiktoken's counter when configured and its encoding loads; else the heuristic."""
    if config.security.limits.tokenizer != "tiktoken":
        return None
    counter = tiktoken_counter()
    if counter is None:
        log.warning("limits.tokenizer: tiktoken could not load its encoding; using chars / 4")
    return counter


def _limiter(
    config: Config, redis: Redis | RedisCluster | None, clock: Callable[[], float]
) -> tuple[Limiter | None, Callable[[], Coroutine[Any, Any, None]] | None]:
    """A limiter when some limit is configured: on the shared Redis when there is one."""
    security = config.security
    auth = security.auth
    limited = (
        any(security.limits.groups.values())
        or any(key.limits for key in auth.keys)
        or any(team.limits for team in auth.teams.values())
        or auth.redis_keys
    )
    if not limited:
        return None, None
    if redis is None:
        return LocalLimiter(clock), None
    from edgeproxy.security.ratelimit_redis import RedisLimiter

    shared = config.security.redis
    limiter = RedisLimiter(
        redis,
        shared.prefix,
        clock=clock,
        timeout=shared.timeout,
        on_error=security.limits.on_redis_error,
        local_share=security.limits.local_share,
    )
    return limiter, limiter.keep_leases


def _budgets(
    config: Config, redis: Redis | RedisCluster | None, wall_clock: Callable[[], float]
) -> Budgets:
    if redis is None:
        return LocalBudgets(wall_clock)
    from edgeproxy.security.budgets import RedisBudgets

    shared = config.security.redis
    return RedisBudgets(
        redis,
        shared.prefix,
        wall_clock,
        shared.timeout,
        config.security.budgets.on_redis_error,
    )
