"""Rate limits shared by every replica through one Redis (or Redis Cluster): the arithmetic of
`edgeproxy.security.ratelimit`, run by one Lua script per check so that a check and its
consumption are atomic across replicas.

Keys (P = the prefix, S = a scope name; scope names are identifiers, never secrets):

    {P}:b:S    a hash: t (when last refilled, server seconds), r (request units taken), k
               (token units taken, debt above the TPM); expires when both buckets are full
    {P}:l:S    a sorted set of parallel leases: member = lease id, score = expiry (server
               seconds); expired leases are pruned by every check, the key expires with its
               newest lease

Every key carries the hash tag `{P}`, so a check of several scopes is one EVALSHA in a Redis
Cluster (a multi-key script must stay in one slot). The trade-off: all limiter keys live in
one slot, on one primary, which runs every check (15-70 us of server time per check on a busy
2-vCPU test machine, see docs/guardrails.md). No split could help: team and model-group scopes
are shared by every key, so any check may touch any of them, atomically.

Time is the server's (`TIME` inside the script), so replicas with skewed clocks agree. The
script has three modes: `admit` (check all scopes, consume all or nothing), `settle` (charge a
token difference, free a lease) and `renew` (push this replica's leases' expiry forward). A
lease lives `lease_ttl` seconds unless renewed: `keep_leases` renews the leases of requests in
flight every third of that, so a replica that dies leaks its slots for at most `lease_ttl`.
redis-py's `register_script` sends EVALSHA and loads the script on NOSCRIPT.

Failures: every call is bounded by `timeout`; give the client a pool that waits for a free
connection (`BlockingConnectionPool`) or one larger than the requests in flight, since a full
plain pool fails the call at once (the policy answers it; it is not an outage). A failure
opens a breaker for `probe_interval` seconds, during which the limiter does not touch Redis,
then one call probes it. Meanwhile `on_error` decides: `local` checks against a `LocalLimiter`
with `local_share` of every limit (1/replicas keeps the fleet's total near the configured
one), `open` lets requests through unchecked, `closed` refuses them (`reason` "backend_down",
the stage's 503). Each failed call is counted in `edgeproxy_ratelimit_backend_errors_total`;
an outage is logged once when it starts and once when Redis answers again. A call that timed
out may still have consumed in Redis: that request is counted there and decided by the
policy here (over-counting, never under-counting); its lease expires with `lease_ttl`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any, Literal

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import MaxConnectionsError

from edgeproxy.config import BreakerSettings
from edgeproxy.routing.breaker import BreakerState, CircuitBreaker
from edgeproxy.security.ratelimit import (
    SLACK,
    Admission,
    Check,
    Fill,
    Limits,
    LocalLimiter,
    judge,
)
from edgeproxy.telemetry.counters import RATELIMIT_BACKEND_ERRORS

log = logging.getLogger("edgeproxy.ratelimit")

FailurePolicy = Literal["local", "open", "closed"]
POLICIES: tuple[FailurePolicy, ...] = ("local", "open", "closed")

# KEYS: admit and settle: per scope, its bucket then its leases; renew: lease sets.
# ARGV: mode, tokens (admit: the estimate; settle: the difference), lease id ("" for none),
# lease ttl; then admit and settle: rpm, tpm, parallel per scope (0: no limit); renew: one
# lease id per key. Numbers go out with %.17g, which a double survives exactly.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local mode, tokens, lease, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local slack = @SLACK@

local function fmt(x) return string.format('%.17g', x) end

if mode == 'renew' then
  for i = 1, #KEYS do
    if redis.call('ZADD', KEYS[i], 'XX', 'CH', fmt(now + ttl), ARGV[4 + i]) == 1 then
      redis.call('PEXPIRE', KEYS[i], string.format('%.0f', math.ceil(ttl * 1000)))
    end
  end
  return 1
end

local scopes = {}
for i = 1, #KEYS / 2 do
  local at = 4 + 3 * (i - 1)
  local s = {bucket = KEYS[2 * i - 1], leases = KEYS[2 * i], rpm = tonumber(ARGV[at + 1]),
             tpm = tonumber(ARGV[at + 2]), parallel = tonumber(ARGV[at + 3]), held = 0}
  local h = redis.call('HMGET', s.bucket, 't', 'r', 'k')
  s.stamp, s.r, s.k = tonumber(h[1]) or now, tonumber(h[2]) or 0, tonumber(h[3]) or 0
  local elapsed = now - s.stamp
  if elapsed > 0 then
    if s.rpm > 0 then s.r = math.max(0, s.r - elapsed * s.rpm / 60) end
    if s.tpm > 0 then s.k = math.max(0, s.k - elapsed * s.tpm / 60) end
    s.stamp = now
  end
  if s.parallel > 0 then
    redis.call('ZREMRANGEBYSCORE', s.leases, '-inf', fmt(now))
    s.held = redis.call('ZCARD', s.leases)
  end
  scopes[i] = s
end

local function save(s)
  local refill = 0
  if s.rpm > 0 then refill = s.r * 60 / s.rpm end
  if s.tpm > 0 then refill = math.max(refill, s.k * 60 / s.tpm) end
  if refill > 0 then
    redis.call('HSET', s.bucket, 't', fmt(s.stamp), 'r', fmt(s.r), 'k', fmt(s.k))
    redis.call('PEXPIRE', s.bucket, string.format('%.0f', math.ceil(refill * 1000) + 1000))
  else
    redis.call('DEL', s.bucket)
  end
end

local allowed = 1
if mode == 'admit' then
  for _, s in ipairs(scopes) do
    if (s.rpm > 0 and s.r + 1 > s.rpm + slack) or (s.tpm > 0 and s.k + tokens > s.tpm + slack)
        or (s.parallel > 0 and s.held >= s.parallel) then
      allowed = 0
    end
  end
  if allowed == 1 then
    for _, s in ipairs(scopes) do
      if s.rpm > 0 then s.r = s.r + 1 end
      if s.tpm > 0 then s.k = s.k + tokens end
      if s.rpm > 0 or s.tpm > 0 then save(s) end
      if s.parallel > 0 then
        redis.call('ZADD', s.leases, fmt(now + ttl), lease)
        redis.call('PEXPIRE', s.leases, string.format('%.0f', math.ceil(ttl * 1000)))
        s.held = s.held + 1
      end
    end
  end
else
  for _, s in ipairs(scopes) do
    if s.tpm > 0 and tokens ~= 0 then
      s.k = math.max(0, s.k + tokens)
      save(s)
    end
    if s.parallel > 0 and lease ~= '' then redis.call('ZREM', s.leases, lease) end
  end
end

local reply = {allowed}
for _, s in ipairs(scopes) do
  reply[#reply + 1] = fmt(s.r)
  reply[#reply + 1] = fmt(s.k)
  reply[#reply + 1] = s.held
end
return reply
""".replace("@SLACK@", repr(SLACK))


def _limit_args(checks: Sequence[Check]) -> list[int]:
    return [n or 0 for _, lim in checks for n in (lim.rpm, lim.tpm, lim.parallel)]


class RedisLimiter:
    """Limits shared through `client` (a `redis.asyncio.Redis` or `RedisCluster`, whose
    lifecycle the caller owns). `clock` (monotonic seconds) drives the breaker and the local
    fallback; Redis's own clock drives the limits."""

    __slots__ = (
        "_breaker",
        "_clock",
        "_fallback",
        "_held",
        "_lease_ttl",
        "_leases",
        "_local_share",
        "_on_error",
        "_prefix",
        "_replica",
        "_script",
        "_timeout",
    )

    def __init__(
        self,
        client: Redis | RedisCluster,
        prefix: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 0.05,
        on_error: FailurePolicy = "local",
        local_share: float = 1.0,
        lease_ttl: float = 60.0,
        probe_interval: float = 1.0,
    ) -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError("the prefix must be non-empty and hold no braces (it is the hash tag)")
        if on_error not in POLICIES:
            raise ValueError(f"on_error must be one of {', '.join(POLICIES)}")
        if not 0 < local_share <= 1:
            raise ValueError("local_share must be in (0, 1]")
        if timeout <= 0 or lease_ttl <= 0 or probe_interval <= 0:
            raise ValueError("timeout, lease_ttl and probe_interval must be positive")
        self._script = client.register_script(_SCRIPT)
        self._prefix = "{" + prefix + "}"
        self._clock = clock
        self._timeout = timeout
        self._on_error = on_error
        self._local_share = local_share
        self._lease_ttl = lease_ttl
        self._fallback = LocalLimiter(clock)
        self._breaker = CircuitBreaker(
            BreakerSettings(
                failure_threshold=1,
                reset_timeout=probe_interval,
                error_rate=1.0,
                min_requests=10**9,
                half_open_requests=1,
            )
        )
        self._replica = uuid.uuid4().hex[:12]
        self._leases = 0
        self._held: dict[str, list[str]] = {}  # lease id -> its lease sets, while in flight

    def keys(self, scope: str) -> tuple[str, str]:
        """The Redis keys of a scope: its buckets and its leases."""
        return f"{self._prefix}:b:{scope}", f"{self._prefix}:l:{scope}"

    async def admit(self, checks: Sequence[Check], tokens: int = 0) -> Admission:
        """Check and consume every scope at once in Redis; when Redis fails, `on_error`."""
        if tokens < 0:
            raise ValueError("a token estimate cannot be negative")
        active = [check for check in checks if not check[1].unlimited]
        if not active:
            return Admission(True, "ok")
        keys = [key for name, _ in active for key in self.keys(name)]
        lease = ""
        if any(limits.parallel is not None for _, limits in active):
            self._leases += 1
            lease = f"{self._replica}:{self._leases}"
        args = ["admit", tokens, lease, self._lease_ttl, *_limit_args(active)]
        reply = await self._call("admit", keys, args)
        if reply is None:
            return self._unavailable(active, tokens)
        fills = [
            Fill(float(reply[i]), float(reply[i + 1]), int(reply[i + 2]))
            for i in range(1, len(reply), 3)
        ]
        if int(reply[0]) != 1:
            return judge(active, fills, tokens, None)
        if lease:
            self._held[lease] = [self.keys(n)[1] for n, lim in active if lim.parallel is not None]
        return judge(active, fills, tokens, _RedisGrant(self, active, keys, lease, tokens))

    async def renew_leases(self) -> bool:
        """Push the expiry of every lease this replica holds `lease_ttl` into the future, in
        one call; whether it worked (nothing held counts as worked)."""
        if not self._held:
            return True
        keys = [key for sets in self._held.values() for key in sets]
        ids = [lease for lease, sets in self._held.items() for _ in sets]
        return await self._call("renew", keys, ["renew", 0, "", self._lease_ttl, *ids]) is not None

    async def keep_leases(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Renew the leases every third of `lease_ttl`, until cancelled: run it as a service
        of `edgeproxy.background.Background`."""
        while True:
            await sleep(self._lease_ttl / 3)
            await self.renew_leases()

    @property
    def leases_held(self) -> int:
        return len(self._held)

    async def _settle(
        self, checks: Sequence[Check], keys: list[str], tokens: int, lease: str
    ) -> bool:
        if lease:
            self._held.pop(lease, None)
        args = ["settle", tokens, lease, self._lease_ttl, *_limit_args(checks)]
        return await self._call("settle", keys, args) is not None

    def _unavailable(self, checks: Sequence[Check], tokens: int) -> Admission:
        if self._on_error == "open":
            return Admission(True, "unchecked", degraded=True)
        if self._on_error == "closed":
            now = self._clock()
            wait = max(1.0, self._breaker.available_at(now) - now)
            return Admission(False, "backend_down", wait, degraded=True)
        share = [(name, self._share(limits)) for name, limits in checks]
        return replace(self._fallback.admit_now(share, tokens), degraded=True)

    def _share(self, limits: Limits) -> Limits:
        """`local_share` of each limit, rounded down (so replicas together stay within the
        configured limit) but at least 1."""

        def part(limit: int | None) -> int | None:
            return None if limit is None else max(1, math.floor(limit * self._local_share))

        return Limits(part(limits.rpm), part(limits.tpm), part(limits.parallel))

    async def _call(self, what: str, keys: list[str], args: list[Any]) -> list[Any] | None:
        """The script under the deadline and the breaker; None when it failed or was not
        tried (the breaker open after a failure)."""
        breaker = self._breaker
        if not breaker.acquire(self._clock()):
            return None
        try:
            async with asyncio.timeout(self._timeout):
                reply = await self._script(keys=keys, args=args)
        except asyncio.CancelledError:
            breaker.release()
            raise
        except Exception as exc:
            self._failed(what, exc)
            return None
        if breaker.state is not BreakerState.CLOSED:
            self._probed()
        return list(reply) if isinstance(reply, list) else [reply]

    def _probed(self) -> None:
        """A call succeeded while the breaker was not closed: the outage may be over."""
        self._breaker.record_success(self._clock())
        if self._breaker.state is BreakerState.CLOSED:
            log.info("rate limits: Redis answers again; limits are shared again")

    def _failed(self, what: str, exc: Exception) -> None:
        timed_out = isinstance(exc, TimeoutError)
        RATELIMIT_BACKEND_ERRORS.labels("timeout" if timed_out else "error").inc()
        breaker = self._breaker
        if isinstance(exc, MaxConnectionsError):  # our pool is full: Redis did nothing wrong
            breaker.release()
            log.debug("rate limits: Redis %s found no free connection in the pool", what)
            return
        was_closed = breaker.state is BreakerState.CLOSED
        breaker.record_failure(self._clock())
        if was_closed:
            log.warning(
                "rate limits: Redis %s failed (%r); policy %r applies until it answers",
                what,
                exc,
                self._on_error,
            )
        else:
            log.debug("rate limits: Redis %s failed again: %r", what, exc)


class _RedisGrant:
    __slots__ = ("_charged", "_checks", "_keys", "_lease", "_limiter", "_released")

    def __init__(
        self,
        limiter: RedisLimiter,
        checks: Sequence[Check],
        keys: list[str],
        lease: str,
        charged: int,
    ) -> None:
        self._limiter = limiter
        self._checks = checks
        self._keys = keys
        self._lease = lease
        self._charged = charged
        self._released = False

    async def reconcile(self, actual_tokens: int) -> None:
        delta = actual_tokens - self._charged
        if not delta or not any(limits.tpm is not None for _, limits in self._checks):
            return
        if await self._limiter._settle(self._checks, self._keys, delta, ""):
            self._charged = actual_tokens

    def settle(self, actual_tokens: int | None) -> Coroutine[Any, Any, None]:
        return self._settled(actual_tokens)

    async def _settled(self, actual_tokens: int | None) -> None:
        try:
            if actual_tokens is not None:
                await self.reconcile(actual_tokens)
        finally:
            await self.release()

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._lease:
            await self._limiter._settle(self._checks, self._keys, 0, self._lease)
