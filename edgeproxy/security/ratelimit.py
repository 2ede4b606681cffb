"""Rate limits per key, team and model group: requests per minute (RPM), tokens per minute
(TPM) and requests in flight (parallel), checked all at once and exact.

Semantics. Each RPM or TPM limit L of a scope is a bucket of capacity L that refills
continuously at L/60 units per second (the token bucket OpenAI and Anthropic describe for their
own limits). A request takes 1 unit from each RPM bucket and its token estimate from each TPM
bucket, and passes only if every bucket of every scope it names holds that much; otherwise
nothing is taken anywhere. So "RPM 10" means: from idle, 10 requests at once, then one more
every 6 s; over any interval of T seconds at most 10 + 10*T/60 pass, and the long-run average
is exactly 10 a minute. 100 simultaneous requests against RPM 10 see exactly 10 pass, and a
steady client reaches 100 % of its TPM (never the 60-90 % of window-based estimates). There is
no window boundary at which a second burst opens. A bucket's state is two numbers (what is
taken and not yet refilled, and when that was computed), O(1) per scope.

Tokens. `admit` reserves an estimate (`token_estimate`) before the call; the grant's
`reconcile(actual)` charges the difference once the usage is known: a refund fills the bucket
(never above full), an excess pushes it into debt, so the next requests wait until it is paid
back. `release()` frees the parallel slot; it is idempotent and must run exactly once for
every admitted request, errors and cancellation included.

`LocalLimiter` is exact in one process: a check and its consumption are one piece of
synchronous code, which no other task of the event loop can interleave. Several replicas share
`edgeproxy.security.ratelimit_redis.RedisLimiter`, which runs the same arithmetic in one Redis
script and shares `judge`, the rules for what a 429 says, with this module.

Comparisons allow `SLACK` (a millionth of a unit) so that refills computed in floating point
never refuse a request that fits exactly.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

LimitKind = Literal["rpm", "tpm", "parallel"]
Reason = Literal["ok", "rate_limited", "too_large", "unchecked", "backend_down"]
TokenCounter = Callable[[str], int]

SLACK = 1e-6  # units: refills in floating point never refuse what fits exactly
# A parallel limit frees a slot when some request ends, which cannot be foreseen.
PARALLEL_RETRY_AFTER = 1.0
# chars/4 is the usual average for English with GPT and Claude tokenizers; each message adds
# its role and separators (about 4 tokens with OpenAI's chat format).
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
_SWEEP_EVERY = 1024  # admissions between sweeps of idle local scopes


@dataclass(frozen=True, slots=True)
class Limits:
    """A scope's limits; None is no limit of that kind."""

    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None

    def __post_init__(self) -> None:
        for kind in ("rpm", "tpm", "parallel"):
            value = getattr(self, kind)
            if value is not None and value < 1:
                raise ValueError(f"{kind} must be at least 1 (or None for no limit)")

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and self.tpm is None and self.parallel is None


# A scope's name ("key:k1", "team:t", "group:gpt-4o": distinct within one check, an identifier
# and never a secret) and its limits.
Check = tuple[str, Limits]


@dataclass(slots=True)
class Quota:
    """One kind's numbers for the rate-limit headers, of the most constraining scope."""

    limit: int
    remaining: int
    reset: float  # seconds until its bucket is full again


class Grant(Protocol):
    """What an admitted request holds until it is settled."""

    async def reconcile(self, actual_tokens: int) -> None:
        """Make the request's total charge `actual_tokens` (repeatable: the last call wins)."""

    async def release(self) -> None:
        """Free the parallel slot; idempotent."""

    def settle(self, actual_tokens: int | None) -> Coroutine[Any, Any, None] | None:
        """Reconcile (when `actual_tokens` is given) and release: done at once for a grant
        held in process (None, so nothing can lose it), else the work to await."""


class _NoGrant:
    """The grant of a refused or unchecked request: it holds nothing."""

    __slots__ = ()

    async def reconcile(self, actual_tokens: int) -> None:
        return None

    async def release(self) -> None:
        return None

    def settle(self, actual_tokens: int | None) -> None:
        return None


NO_GRANT: Grant = _NoGrant()


@dataclass(slots=True)
class Admission:
    """The answer to a check, a value nothing changes once made (not frozen, which would cost
    a microsecond per request). When refused, `scope` and `limit` name what refused (the one
    with the longest wait) and `retry_after` is when the request would fit (0 when it never
    will: `too_large`). `degraded` says the shared backend failed and its failure policy
    answered (`unchecked`: let through; `backend_down`: refused). Every admission carries a
    grant to settle; a refused one's holds nothing."""

    allowed: bool
    reason: Reason
    retry_after: float = 0.0
    scope: str | None = None
    limit: LimitKind | None = None
    requests: Quota | None = None
    tokens: Quota | None = None
    degraded: bool = False
    grant: Grant = NO_GRANT


class Limiter(Protocol):
    """What the pipeline stage calls: `LocalLimiter` or `RedisLimiter`."""

    async def admit(self, checks: Sequence[Check], tokens: int = 0) -> Admission:
        """Check and consume every scope of `checks` at once, reserving `tokens`."""


@dataclass(slots=True)
class Fill:
    """What a scope holds at one instant: request and token units taken and not yet refilled
    (a TPM above its limit is debt), and parallel slots in use."""

    requests: float = 0.0
    tokens: float = 0.0
    leases: int = 0


# --- the rules, shared with the Redis script ---------------------------------------------------


def fits(limits: Limits, fill: Fill, tokens: int) -> bool:
    """Whether one more request of `tokens` fits (the Redis script makes the same comparisons)."""
    return (
        (limits.rpm is None or fill.requests + 1 <= limits.rpm + SLACK)
        and (limits.tpm is None or fill.tokens + tokens <= limits.tpm + SLACK)
        and (limits.parallel is None or fill.leases < limits.parallel)
    )


def judge(
    checks: Sequence[Check], fills: Sequence[Fill], tokens: int, grant: Grant | None
) -> Admission:
    """The admission for `fills` (after consumption when admitted, as found when refused): the
    header numbers of the tightest scope per kind and, when refused (`grant` None), what
    refused and how long until the request fits."""
    requests: Quota | None = None
    taken: Quota | None = None
    for (_, limits), fill in zip(checks, fills, strict=True):
        if limits.rpm is not None:
            requests = _tighter(requests, limits.rpm, fill.requests)
        if limits.tpm is not None:
            taken = _tighter(taken, limits.tpm, fill.tokens)
    if grant is not None:
        return Admission(True, "ok", 0.0, None, None, requests, taken, False, grant)
    wait, scope, limit = 0.0, None, None
    for (name, limits), fill in zip(checks, fills, strict=True):
        if limits.tpm is not None and tokens > limits.tpm:
            return Admission(False, "too_large", 0.0, name, "tpm", requests, taken)
        for kind, seconds in _waits(limits, fill, tokens):
            if scope is None or seconds > wait:
                wait, scope, limit = seconds, name, kind
    return Admission(False, "rate_limited", wait, scope, limit, requests, taken)


def _waits(limits: Limits, fill: Fill, tokens: int) -> Iterable[tuple[LimitKind, float]]:
    """Each limit of a scope the request does not fit, and how long until it does."""
    if limits.rpm is not None and fill.requests + 1 > limits.rpm + SLACK:
        yield "rpm", (fill.requests + 1 - limits.rpm) * 60 / limits.rpm
    if limits.tpm is not None and fill.tokens + tokens > limits.tpm + SLACK:
        yield "tpm", (fill.tokens + tokens - limits.tpm) * 60 / limits.tpm
    if limits.parallel is not None and fill.leases >= limits.parallel:
        yield "parallel", PARALLEL_RETRY_AFTER


def _tighter(best: Quota | None, limit: int, taken: float) -> Quota:
    """`best`, or this scope's quota when it has fewer units left (or as few, a later reset)."""
    remaining = max(0, math.floor(limit - taken + SLACK))
    reset = max(0.0, taken * 60 / limit)
    if (
        best is None
        or remaining < best.remaining
        or (remaining == best.remaining and reset > best.reset)
    ):
        return Quota(limit, remaining, reset)
    return best


# --- one process -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Scope(Fill):
    stamp: float = 0.0  # when `requests` and `tokens` were last refilled
    idle_at: float = 0.0  # when both buckets are full again (if nothing else is taken)


class LocalLimiter:
    """Exact limits within one process; `clock` is monotonic seconds (a test's manual one)."""

    __slots__ = ("_admitted", "_clock", "_scopes")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._scopes: dict[str, _Scope] = {}
        self._admitted = 0

    async def admit(self, checks: Sequence[Check], tokens: int = 0) -> Admission:
        return self.admit_now(checks, tokens)

    def admit_now(self, checks: Sequence[Check], tokens: int = 0) -> Admission:
        """`admit` without the coroutine: check and consume in one synchronous step."""
        if tokens < 0:
            raise ValueError("a token estimate cannot be negative")
        now = self._clock()
        active = [check for check in checks if not check[1].unlimited]
        scopes = [self._refilled(name, limits, now) for name, limits in active]
        if not all(fits(limits, s, tokens) for (_, limits), s in zip(active, scopes, strict=True)):
            return judge(active, scopes, tokens, None)
        for (_, limits), scope in zip(active, scopes, strict=True):
            if limits.rpm is not None:
                scope.requests += 1
            if limits.tpm is not None:
                scope.tokens += tokens
            if limits.parallel is not None:
                scope.leases += 1
            _mark_idle(scope, limits)
        self._admitted += 1
        if self._admitted % _SWEEP_EVERY == 0:
            self._sweep(now)
        return judge(active, scopes, tokens, _LocalGrant(self, active, tokens))

    @property
    def scopes(self) -> int:
        """How many scopes are tracked (idle ones are dropped now and then)."""
        return len(self._scopes)

    def _refilled(self, name: str, limits: Limits, now: float) -> _Scope:
        scope = self._scopes.get(name)
        if scope is None:
            scope = self._scopes[name] = _Scope(stamp=now, idle_at=now)
            return scope
        elapsed = now - scope.stamp
        if elapsed > 0:
            if limits.rpm is not None:
                scope.requests = max(0.0, scope.requests - elapsed * limits.rpm / 60)
            if limits.tpm is not None:
                scope.tokens = max(0.0, scope.tokens - elapsed * limits.tpm / 60)
            scope.stamp = now
        return scope

    def _sweep(self, now: float) -> None:
        """Forget scopes whose buckets are full and that hold no slot: they equal new ones."""
        idle = [n for n, s in self._scopes.items() if s.leases == 0 and s.idle_at <= now]
        for name in idle:
            del self._scopes[name]

    def _charge(self, checks: Sequence[Check], delta: int) -> None:
        now = self._clock()
        for name, limits in checks:
            if limits.tpm is not None:
                scope = self._refilled(name, limits, now)
                scope.tokens = max(0.0, scope.tokens + delta)
                _mark_idle(scope, limits)

    def _release(self, checks: Sequence[Check]) -> None:
        for name, limits in checks:
            scope = self._scopes.get(name)
            if limits.parallel is not None and scope is not None and scope.leases > 0:
                scope.leases -= 1


def _mark_idle(scope: _Scope, limits: Limits) -> None:
    refill = 0.0
    if limits.rpm is not None:
        refill = scope.requests * 60 / limits.rpm
    if limits.tpm is not None:
        refill = max(refill, scope.tokens * 60 / limits.tpm)
    scope.idle_at = scope.stamp + refill


class _LocalGrant:
    __slots__ = ("_charged", "_checks", "_limiter", "_released")

    def __init__(self, limiter: LocalLimiter, checks: Sequence[Check], charged: int) -> None:
        self._limiter = limiter
        self._checks = checks
        self._charged = charged
        self._released = False

    async def reconcile(self, actual_tokens: int) -> None:
        self._reconcile(actual_tokens)

    async def release(self) -> None:
        self._release()

    def settle(self, actual_tokens: int | None) -> None:
        if actual_tokens is not None:
            self._reconcile(actual_tokens)
        self._release()

    def _reconcile(self, actual_tokens: int) -> None:
        delta = actual_tokens - self._charged
        if delta:
            self._limiter._charge(self._checks, delta)
            self._charged = actual_tokens

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter._release(self._checks)


# --- token estimates ---------------------------------------------------------------------------


def token_estimate(
    texts_chars: int,
    max_tokens: int | None,
    *,
    messages: int = 0,
    prompt_tokens: int | None = None,
) -> int:
    """What to reserve before the call: the prompt (counted by a tokenizer when the caller has
    one, `prompt_tokens`, else `ceil(texts_chars / 4)`), `TOKENS_PER_MESSAGE` per message, and
    `max_tokens` for the answer. Without `max_tokens` the answer is not reserved: `reconcile`
    charges it afterwards, as debt if need be. chars/4 undercounts CJK text and some code
    (closer to 1-2 chars per token), which `reconcile` corrects after the call."""
    prompt = prompt_tokens if prompt_tokens is not None else -(-texts_chars // CHARS_PER_TOKEN)
    return prompt + TOKENS_PER_MESSAGE * messages + (max_tokens or 0)


def tiktoken_counter(encoding: str = "o200k_base") -> TokenCounter | None:
    """A prompt token counter from tiktoken when it is installed, else None (use the chars/4
    heuristic). Call it once at build time, never per request: tiktoken reads the encoding's
    BPE file from its cache (TIKTOKEN_CACHE_DIR) and downloads it when it is missing, so an
    offline pod needs that cache filled beforehand; when loading fails this returns None."""
    try:
        tiktoken = importlib.import_module("tiktoken")  # optional: not a dependency
    except ImportError:
        return None
    try:
        encoder = tiktoken.get_encoding(encoding)
    except Exception:
        return None

    def count(text: str) -> int:
        return len(encoder.encode_ordinary(text))

    return count


# --- the headers of a 429 (and, if wanted, of every answer) -----------------------------------


def rate_limit_headers(
    dialect: str, admission: Admission, *, now: float | None = None
) -> list[tuple[str, str]]:
    """OpenAI's `x-ratelimit-*` (resets as Go durations: `6m0s`, `1.5s`, `120ms`) or
    Anthropic's `anthropic-ratelimit-*` (resets as RFC 3339 UTC instants, from `now` in Unix
    seconds, the wall clock by default); other dialects get none. A refusal adds `retry-after`
    (whole seconds, rounded up) and `retry-after-ms`, which both official SDKs prefer."""
    present = [
        (kind, quota)
        for kind, quota in (("requests", admission.requests), ("tokens", admission.tokens))
        if quota is not None
    ]
    headers: list[tuple[str, str]] = []
    if dialect == "openai":
        headers += [(f"x-ratelimit-limit-{kind}", str(q.limit)) for kind, q in present]
        headers += [(f"x-ratelimit-remaining-{kind}", str(q.remaining)) for kind, q in present]
        headers += [(f"x-ratelimit-reset-{kind}", go_duration(q.reset)) for kind, q in present]
    elif dialect == "anthropic":
        wall = time.time() if now is None else now
        for kind, quota in present:
            headers += [
                (f"anthropic-ratelimit-{kind}-limit", str(quota.limit)),
                (f"anthropic-ratelimit-{kind}-remaining", str(quota.remaining)),
                (f"anthropic-ratelimit-{kind}-reset", rfc3339(wall + quota.reset)),
            ]
    if not admission.allowed and admission.retry_after > 0:
        headers.append(("retry-after", str(math.ceil(admission.retry_after - SLACK))))
        headers.append(("retry-after-ms", str(math.ceil(admission.retry_after * 1000 - SLACK))))
    return headers


def go_duration(seconds: float) -> str:
    """Seconds as OpenAI writes them (Go's time.Duration), rounded up to the millisecond:
    `0s`, `120ms`, `1s`, `1.5s`, `6m0s`, `1h2m3.25s`."""
    ms = math.ceil(seconds * 1000 - SLACK)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, fraction = divmod(rest, 1000)
    secs = f"{whole}.{fraction:03d}".rstrip("0") if fraction else str(whole)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def rfc3339(unix_seconds: float) -> str:
    """An instant as Anthropic writes it, rounded up to the second: `2025-10-25T12:01:00Z`."""
    instant = datetime.fromtimestamp(math.ceil(unix_seconds - SLACK), UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")
