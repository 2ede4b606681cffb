"""Stage: a caller's rate limits (its key's, its team's) and its model group's, all at once.

One check covers every scope that applies, all or nothing (security/ratelimit.py): in this
process, or in one atomic script on the shared Redis. Tokens per minute are reserved before the
call from an estimate, and reconciled with the real usage when the exchange is over (an answer
the cache gave used no provider tokens); the parallel slot is freed then too.

The estimate: the prompt's tokens as tiktoken counts them (`limits.tokenizer: tiktoken`), else
the request body's length over 4 (a token is about 4 characters of English; JSON punctuation
makes it an overestimate, which the reconciliation returns); 4 tokens per message; plus the
request's max_tokens, or DEFAULT_OUTPUT_TOKENS when it asks for none.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping

from edgeproxy import errors
from edgeproxy.background import Background
from edgeproxy.exchange import Exchange, Reply
from edgeproxy.security.prompt_text import request_texts
from edgeproxy.security.ratelimit import (
    Admission,
    Check,
    Grant,
    Limiter,
    Limits,
    TokenCounter,
    rate_limit_headers,
    token_estimate,
)
from edgeproxy.security.settings import KeySettings, LimitSettings

DEFAULT_OUTPUT_TOKENS = 1024
_FREE = frozenset({"hit-l1", "hit-l2", "hit-semantic", "coalesced"})
_MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def limits_of(settings: LimitSettings) -> Limits:
    return Limits(rpm=settings.rpm, tpm=settings.tpm, parallel=settings.parallel)


def _estimate(exchange: Exchange, count: TokenCounter | None) -> int:
    payload = exchange.payload
    asked = next((payload[f] for f in _MAX_TOKENS_FIELDS if isinstance(payload.get(f), int)), None)
    messages = payload.get("messages")
    prompt = None
    if count is not None:
        slots = request_texts(exchange.operation.label, payload)
        prompt = sum(count(slot.get()) for slot in slots)
    return token_estimate(
        len(exchange.body),
        asked if asked is not None else DEFAULT_OUTPUT_TOKENS,
        messages=len(messages) if isinstance(messages, list) else 0,
        prompt_tokens=prompt,
    )


def _refusal(admission: Admission) -> errors.ProxyError:
    headers_for = functools.partial(_headers, admission)
    scope = admission.scope or "this caller"
    if admission.reason == "backend_down":
        return errors.limiter_unavailable()
    if admission.reason == "too_large":
        return errors.request_too_large_for_limit(scope, headers_for)
    return errors.caller_rate_limited(
        scope, admission.limit or "rpm", admission.retry_after, headers_for
    )


def _headers(admission: Admission, dialect: str) -> list[tuple[str, str]]:
    return rate_limit_headers(dialect, admission)


class AdmitLimits:
    """Runs after route (the group's limits need the group)."""

    __slots__ = ("_background", "_checks", "_count", "_groups", "_limiter", "_teams", "refused")

    def __init__(
        self,
        limiter: Limiter,
        groups: Mapping[str, LimitSettings],
        teams: Mapping[str, LimitSettings],
        background: Background,
        count: TokenCounter | None = None,
    ) -> None:
        self._limiter = limiter
        self._count = count  # a tokenizer's prompt count, else characters / 4
        # Refusals by the kind of scope (key, team, group) and what refused (a limit, or
        # the shared store, down with on_redis_error: closed).
        self.refused: Counter[tuple[str, str]] = Counter()
        self._groups = {name: limits_of(s) for name, s in groups.items() if s}
        self._teams = {name: limits_of(s) for name, s in teams.items() if s}
        self._background = background
        self._checks: dict[tuple[str | None, str], tuple[Check, ...]] = {}

    def checks(self, caller: KeySettings | None, group: str) -> tuple[Check, ...]:
        """The scopes that apply to this caller on this group (memoised per pair)."""
        key = (caller.id if caller is not None else None, group)
        found = self._checks.get(key)
        if found is None:
            checks: list[Check] = []
            if caller is not None:
                if caller.limits:
                    checks.append((f"key:{caller.id}", limits_of(caller.limits)))
                team = self._teams.get(caller.team) if caller.team is not None else None
                if team is not None:
                    checks.append((f"team:{caller.team}", team))
            if group in self._groups:
                checks.append((f"group:{group}", self._groups[group]))
            found = self._checks[key] = tuple(checks)
        return found

    async def __call__(self, exchange: Exchange) -> Reply | None:
        group = exchange.group
        assert group is not None, "route runs before the limits"
        checks = self.checks(exchange.caller, group.name)
        if not checks:
            return None
        metered = any(c[1].tpm is not None for c in checks)
        tokens = _estimate(exchange, self._count) if metered else 0
        admission = await self._limiter.admit(checks, tokens)
        if not admission.allowed:
            scope = (admission.scope or "").partition(":")[0] or "store"
            what = "store" if admission.reason == "backend_down" else admission.limit or "rpm"
            self.refused[(scope, what)] += 1
            return _refusal(admission)
        charge = _Held(admission.grant, tokens > 0, self._background)
        if exchange.charges is None:
            exchange.charges = [charge]
        else:
            exchange.charges.append(charge)
        return None


class _Held:
    """A request's reserved tokens and parallel slot, settled when its exchange is over."""

    __slots__ = ("_background", "_grant", "_tokens")

    def __init__(self, grant: Grant, tokens: bool, background: Background) -> None:
        self._grant = grant
        self._tokens = tokens
        self._background = background

    @property
    def metered(self) -> bool:
        return self._tokens

    def settle(self, exchange: Exchange) -> None:
        used = None
        if self._tokens:
            usage = exchange.usage
            free = exchange.cache_status in _FREE
            used = 0 if free or usage is None else usage.total_tokens
        pending = self._grant.settle(used)
        if pending is not None:  # in Redis: a lost settle's lease expires on its own
            self._background.spawn("rate limit settle", pending)
