"""Spend budgets per API key and per team: US dollars per UTC day and per UTC month.

Scopes are names such as `key:<id>` and `team:<name>`: ids, never key material, since they
appear in error messages, logs and Redis key names. A period is a calendar period in UTC: a
day starts at midnight UTC, a month at 00:00 UTC on its first day. Spend is counted per period
(a new period is a new counter), so budgets reset on the boundary without any job running.

Enforcement: `check` runs before a request is forwarded and refuses it once the spend recorded
for one of its scopes has reached a limit (spent >= limit; a limit of 0 refuses everything).
Spend is recorded after the answer (`record`, in the background), so the request that crosses
a limit is allowed, and so are requests in flight at that moment: a budget is overshot by at
most what those cost. When several limits are exhausted, the verdict names the one that resets
last, since the request stays refused until then.

Money is counted in integer nano-dollars (`edgeproxy.pricing.nanos`), so sums never drift;
US dollars appear only at the edges.

Two stores with one interface (`Budgets`):

- `LocalBudgets`: in process, for a single replica; a past period's counters are dropped when
  the next one starts.
- `RedisBudgets`: one Redis or a Redis Cluster shared by every replica, so spend survives
  restarts. Key layout (P = prefix, S = the scope percent-encoded, `:` kept):

      P:budget:{S}:d:2026-12-07   spend of S on that UTC day, nano-dollars (INCRBY)
      P:budget:{S}:m:2026-12      spend of S in that UTC month

  The hash tag is the scope: one scope's counters share a slot, scopes spread over the
  cluster, and every command names a single key. A counter expires `GRACE` seconds after its
  period ends (the expiry is set with every INCRBY, from this replica's clock; replicas'
  clocks may differ by less than that). A check is one pipeline of GETs and a record one
  pipeline of INCRBY and EXPIRE: one round trip each (one per node in a Cluster).

  Failures: each call is bounded by `timeout`. A failed check answers by the policy
  (`open`: allowed; `closed`: refused, `unavailable`), a failed record loses that spend; both
  are counted by operation in `errors` (the metric edgeproxy_budget_backend_errors_total).
  The first failure of an outage is logged as a warning, the rest at debug level until Redis
  answers again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol
from urllib.parse import quote

from edgeproxy.errors import ProxyError, budget_exceeded, budget_unavailable
from edgeproxy.pricing import NANOS_PER_USD, nanos

if TYPE_CHECKING:  # redis-py is imported only where Redis is configured
    from redis.asyncio import Redis, RedisCluster

log = logging.getLogger(__name__)

Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")
GRACE = 3600.0  # how long a counter outlives its period
_SHORT: dict[Period, str] = {"day": "d", "month": "m"}


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """What one scope may spend, in US dollars; None is no limit for that period."""

    daily_usd: float | None = None
    monthly_usd: float | None = None

    def of(self, period: Period) -> float | None:
        return self.daily_usd if period == "day" else self.monthly_usd


Scope = tuple[str, BudgetLimits]


@dataclass(frozen=True, slots=True)
class BudgetVerdict:
    """Whether a request may go on; when refused for spend, which scope and period, what was
    spent against which limit, and how many seconds until that period resets. `unavailable`
    says the store did not answer (allowed or not by the store's policy)."""

    allowed: bool
    scope: str = ""
    period: Period | None = None
    spent_usd: float = 0.0
    limit_usd: float = 0.0
    reset_in: float = 0.0
    unavailable: bool = False


ALLOWED = BudgetVerdict(True)


def refusal(verdict: BudgetVerdict) -> ProxyError:
    """The answer to a request `verdict` refuses."""
    if verdict.period is None:
        return budget_unavailable()
    kind, _, name = verdict.scope.partition(":")
    label = f"{kind} {name}" if name else kind
    return budget_exceeded(label, verdict.period, verdict.limit_usd, verdict.reset_in)


class Budgets(Protocol):
    """A budget store: `check` before forwarding, `record` after the answer."""

    errors: dict[str, int]

    async def check(self, scopes: Sequence[Scope]) -> BudgetVerdict: ...

    async def record(self, scopes: Sequence[Scope], usd: float) -> None: ...

    async def spent(self, scope: str) -> dict[Period, float]: ...


# --- periods ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """One period: its label (`2026-12-07`, `2026-12`) and when it starts and ends (Unix
    seconds)."""

    period: Period
    label: str
    starts: float
    ends: float


def window_at(period: Period, now: float) -> Window:
    """The `period` containing the Unix time `now`, in UTC."""
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        end, label = start + timedelta(days=1), f"{start:%Y-%m-%d}"
    else:
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        next_month = start.replace(day=28) + timedelta(days=4)
        end, label = next_month.replace(day=1), f"{start:%Y-%m}"
    return Window(period, label, start.timestamp(), end.timestamp())


@dataclass(frozen=True, slots=True)
class _Limit:
    """A scope's limit for the current window of one period, in nano-dollars."""

    scope: str
    window: Window
    amount: int


class _Calendar:
    """The current window of each period, recomputed only when time leaves it."""

    __slots__ = ("_current",)

    def __init__(self) -> None:
        self._current: dict[Period, Window] = {}

    def window(self, period: Period, now: float) -> Window:
        known = self._current.get(period)
        if known is None or not known.starts <= now < known.ends:
            known = self._current[period] = window_at(period, now)
        return known

    def limits(self, scopes: Sequence[Scope], now: float) -> list[_Limit]:
        return [
            _Limit(scope, self.window(period, now), nanos(usd))
            for scope, limits in scopes
            for period in PERIODS
            if (usd := limits.of(period)) is not None
        ]


def _verdict(limits: Sequence[_Limit], spent: Sequence[int], now: float) -> BudgetVerdict:
    """Refused for the exhausted limit that resets last, if any is exhausted."""
    worst: tuple[_Limit, int] | None = None
    for limit, used in zip(limits, spent, strict=True):
        if used >= limit.amount and (worst is None or limit.window.ends > worst[0].window.ends):
            worst = (limit, used)
    if worst is None:
        return ALLOWED
    limit, used = worst
    return BudgetVerdict(
        allowed=False,
        scope=limit.scope,
        period=limit.window.period,
        spent_usd=used / NANOS_PER_USD,
        limit_usd=limit.amount / NANOS_PER_USD,
        reset_in=limit.window.ends - now,
    )


# --- in process -------------------------------------------------------------------------------


class LocalBudgets:
    """Spend kept in this process; `clock` gives Unix seconds (the wall clock)."""

    __slots__ = ("_calendar", "_clock", "_counters", "errors")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._calendar = _Calendar()
        self._counters: dict[Period, tuple[str, dict[str, int]]] = {}
        self.errors = {"check": 0, "record": 0}  # nothing here can fail: always zero

    async def check(self, scopes: Sequence[Scope]) -> BudgetVerdict:
        now = self._clock()
        limits = self._calendar.limits(scopes, now)
        if not limits:
            return ALLOWED
        return _verdict(
            limits, [self._of(limit.window).get(limit.scope, 0) for limit in limits], now
        )

    async def record(self, scopes: Sequence[Scope], usd: float) -> None:
        amount = nanos(usd)
        if amount <= 0:
            return
        now = self._clock()
        for period in PERIODS:
            counters = self._of(self._calendar.window(period, now))
            for scope, _ in scopes:
                counters[scope] = counters.get(scope, 0) + amount

    async def spent(self, scope: str) -> dict[Period, float]:
        """What `scope` spent in the current day and month, in US dollars."""
        now = self._clock()
        return {
            period: self._of(self._calendar.window(period, now)).get(scope, 0) / NANOS_PER_USD
            for period in PERIODS
        }

    def _of(self, window: Window) -> dict[str, int]:
        """The counters of `window`, dropping the previous period's when it is new."""
        label, counters = self._counters.get(window.period, ("", {}))
        if label != window.label:
            counters = {}
            self._counters[window.period] = (window.label, counters)
        return counters


# --- Redis ------------------------------------------------------------------------------------


class RedisBudgets:
    """Spend in Redis, shared by replicas; see the module docstring for keys and failures.

    The caller owns `client` (opens and closes it); `wall_clock` gives Unix seconds.
    """

    __slots__ = (
        "_calendar",
        "_client",
        "_clock",
        "_failing",
        "_fallback",
        "_prefix",
        "_timeout",
        "errors",
    )

    def __init__(
        self,
        client: Redis | RedisCluster,
        prefix: str = "edgeproxy",
        wall_clock: Callable[[], float] = time.time,
        timeout: float = 0.05,
        on_error: Literal["open", "closed"] = "open",
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("the Redis prefix must not contain braces (they make hash tags)")
        self._client = client
        self._prefix = f"{prefix}:budget"
        self._clock = wall_clock
        self._timeout = timeout
        self._fallback = BudgetVerdict(on_error == "open", unavailable=True)
        self._calendar = _Calendar()
        self._failing = False
        self.errors = {"check": 0, "record": 0}

    def counter_name(self, scope: str, window: Window) -> str:
        """The Redis key holding `scope`'s spend in `window`."""
        return f"{self._prefix}:{{{quote(scope, safe=':')}}}:{_SHORT[window.period]}:{window.label}"

    async def check(self, scopes: Sequence[Scope]) -> BudgetVerdict:
        now = self._clock()
        limits = self._calendar.limits(scopes, now)
        if not limits:
            return ALLOWED
        pipe = self._client.pipeline(transaction=False)
        for limit in limits:
            pipe.get(self.counter_name(limit.scope, limit.window))
        try:
            async with asyncio.timeout(self._timeout):
                values = await pipe.execute()
        except Exception as exc:
            self._failed("check", exc)
            return self._fallback
        self._answered()
        return _verdict(limits, [int(value or 0) for value in values], now)

    async def record(self, scopes: Sequence[Scope], usd: float) -> None:
        amount = nanos(usd)
        if amount <= 0 or not scopes:
            return
        now = self._clock()
        pipe = self._client.pipeline(transaction=False)
        for period in PERIODS:
            window = self._calendar.window(period, now)
            ttl = math.ceil(window.ends - now + GRACE)
            for scope, _ in scopes:
                name = self.counter_name(scope, window)
                pipe.incrby(name, amount)
                pipe.expire(name, ttl)
        try:
            async with asyncio.timeout(self._timeout):
                await pipe.execute()
        except Exception as exc:
            self._failed("record", exc)
            return
        self._answered()

    async def spent(self, scope: str) -> dict[Period, float]:
        """What `scope` spent in the current day and month, in US dollars (raises when Redis
        does not answer: for the admin view, not the request path)."""
        now = self._clock()
        names = [self.counter_name(scope, self._calendar.window(p, now)) for p in PERIODS]
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.get(name)
        async with asyncio.timeout(self._timeout):
            values = await pipe.execute()
        return {p: int(v or 0) / NANOS_PER_USD for p, v in zip(PERIODS, values, strict=True)}

    def _failed(self, operation: str, exc: Exception) -> None:
        self.errors[operation] += 1
        if self._failing:
            log.debug("budget store: Redis %s failed: %r", operation, exc)
            return
        self._failing = True
        policy = "allowed" if self._fallback.allowed else "refused"
        log.warning(
            "budget store: Redis %s failed (%r); requests are %s and spend goes unrecorded "
            "until it answers",
            operation,
            exc,
            policy,
        )

    def _answered(self) -> None:
        if self._failing:
            self._failing = False
            log.info("budget store: Redis answers again")
