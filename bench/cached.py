"""The cache scenarios: what answering from the exact cache costs the proxy.

The caching issue asks for an L1 hit at no more than 0.15 ms of proxy CPU per request. These
scenarios run proxies of their own (the other scenarios' proxy keeps its cache off, so what it
measured does not change), each with the cache on for one model group, `bench-cached`:

- l1-hit: the default cache (L1 only, no Redis); one question, asked over and over. After the
  prefill every answer comes from the proxy's memory.
- l1-miss: the same proxy, every request a question never asked before (`MISS_VARIANTS` in
  turn): each is a miss, answered upstream and stored. Set against nonstream-c16 (the cache
  off), it is what keying, capturing and storing cost a request the cache cannot answer.
- l2-hit: an L1 of a single entry over the machine's Redis (127.0.0.1:6379, a prefix of this
  run's own, deleted afterwards). The load cycles over `L2_VARIANTS` distinct questions, so
  the one entry L1 holds (the answer last filled from Redis) is never the one asked next: every
  lookup misses L1 and is answered by one Redis GET. Without Redis the scenario is skipped.

The direct side stays the fake upstream answering the same requests, so the proxy/direct ratio
shows what a hit saves over calling even the cheapest possible upstream. Whether the proxy
really answered from the expected layer is not assumed: every measured answer's
`x-edgeproxy-cache` is counted, and a scenario with fewer than 99 % of its expected outcome
(hits; misses for l1-miss) fails loudly (its numbers would describe some other path).
- semantic-hit / semantic-repeat: the default L1 (no Redis) and the semantic layer in serve
  mode for `bench-cached` (threshold 0.95, a budget of 1 s so a busy core at c=16 does not
  turn hits into misses). The prefill asks each question of `SEMANTIC_PAIRS` (stored, and
  indexed in the background), then polls each paraphrase, with `cache-control: no-store` so a
  miss is not stored under the paraphrase's own key, until it comes back `hit-semantic`. The
  load asks paraphrases only: a semantic hit is not stored under the paraphrase's key, so a
  paraphrase asked again is a semantic hit again, never an L1 one. semantic-hit cycles over
  `SEMANTIC_DISTINCT` distinct texts, more than the proxy's embeddings cache holds, so every
  request runs the model (in a worker thread of the proxy, whose CPU counts it);
  semantic-repeat asks the same few paraphrases over and over, so after the first round their
  vectors come from that cache and the model never runs.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis
import redis.asyncio

from bench import load
from bench.procs import Child, Children, Pinning, free_port
from bench.runner import CACHED_MODEL, SEMANTIC_PAIRS, Bench, CacheLayer, Scenario

REDIS_URL = "redis://127.0.0.1:6379/0"  # loopback only
HIT_SHARE_REQUIRED = 0.99
PREFILL_SECONDS = 10.0  # longest wait for the prefilled answers to be stored
PREFILL_POLL = 0.01  # seconds between looks while waiting
SEMANTIC_THRESHOLD = 0.95  # the default
SEMANTIC_BUDGET = "1s"  # at c=16 on one core, up to 16 embeddings queue for it
_NO_STORE = {"cache-control": "no-store"}  # a poll that misses is not stored
_REDIS_TIMEOUT = 2.0  # the bench's own Redis calls (not the proxy's)
_UNSET = "(none)"  # an answer without x-edgeproxy-cache


@dataclass(frozen=True)
class RedisPrefix:
    """The keys of this run in the machine's Redis: everything under `prefix`."""

    url: str
    prefix: str

    @property
    def entries_pattern(self) -> str:
        """SCAN pattern of the cache entries (`P:N:e:{K}`, see edgeproxy/cache/redis.py)."""
        return f"{self.prefix}:*:e:*"


def _sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=_REDIS_TIMEOUT, socket_connect_timeout=_REDIS_TIMEOUT
    )


def _unreachable(url: str) -> str | None:
    """Why Redis at `url` cannot serve the l2-hit scenarios, or None when it answers PING."""
    client = _sync_client(url)
    try:
        client.ping()
    except (redis.RedisError, OSError) as err:
        return f"Redis not reachable at {url} ({type(err).__name__}: {err})"
    finally:
        client.close()
    return None


def _delete_prefix(target: RedisPrefix) -> int:
    """Unlink every key under the run's prefix (SCAN, so Redis is never blocked)."""
    client = _sync_client(target.url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{target.prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += client.unlink(*batch)
    finally:
        client.close()
    return deleted


@contextmanager
def redis_for_bench(url: str | None = None) -> Iterator[RedisPrefix | str]:
    """A fresh prefix in the Redis at `url` (default `REDIS_URL`) whose keys are deleted on the
    way out, or (a string) why the l2-hit scenarios must be skipped. Exit it after the proxies
    have stopped, so no late write of theirs outlives the deletion."""
    url = url or REDIS_URL
    reason = _unreachable(url)
    if reason is not None:
        yield reason
        return
    target = RedisPrefix(url, f"edgeproxy-bench-{secrets.token_hex(6)}")
    try:
        yield target
    finally:
        try:
            deleted = _delete_prefix(target)
        except (redis.RedisError, OSError) as err:
            print(f"bench: could not delete {target.prefix}:* from Redis: {err!r}", file=sys.stderr)
        else:
            print(f"bench: deleted {deleted} Redis keys under {target.prefix}:", file=sys.stderr)


def proxy_config(port: int, upstream_url: str, layer: CacheLayer, l2: RedisPrefix | None) -> str:
    """`bench-cached` with the cache on. l1: the default cache (10,000 entries in L1, no Redis).
    l2: L1 of one entry (it keeps missing, see the module's docstring) over Redis at a prefix
    of this run's own, with the default Redis timeouts and breaker. semantic: the default L1,
    no Redis, and the semantic layer serving for `bench-cached`."""
    group_cache = "true"
    if layer == "l2":
        if l2 is None:
            raise ValueError("the l2 proxy needs Redis")
        cache = (
            "cache:\n"
            "  enabled: true\n"
            "  max_entries: 1  # every lookup misses L1 and goes to Redis\n"
            f'  redis: {{url: "{l2.url}", prefix: "{l2.prefix}"}}\n'
        )
    elif layer == "semantic":
        cache = (
            "cache:\n"
            "  enabled: true\n"
            '  redis: {url: ""}  # L1 only\n'
            f"  semantic: {{mode: serve, threshold: {SEMANTIC_THRESHOLD}, "
            f"budget: {SEMANTIC_BUDGET}}}\n"
        )
        group_cache = "{semantic: true}"
    else:
        cache = 'cache: {enabled: true, redis: {url: ""}}  # L1 only\n'
    return f"""\
server: {{host: 127.0.0.1, port: {port}, access_log: false, shutdown_grace: 2s}}
admin: {{enabled: false}}
logging: {{level: warning}}
{cache}providers:
  up: {{kind: openai, base_url: "{upstream_url}/v1", api_key: sk-bench, max_connections: 64}}
models:
  {CACHED_MODEL}:
    {{deployments: [{{provider: up, model: bench-upstream-model}}], cache: {group_cache}}}
"""


def start_proxy(
    children: Children,
    pinning: Pinning,
    upstream_url: str,
    layer: CacheLayer,
    *,
    l2: RedisPrefix | None,
    results: Path,
) -> tuple[str, Child]:
    """The proxy of one cache layer's scenarios, on the proxy's core like the cache-off one,
    with its base URL; its config is left in `results`."""
    port = free_port()
    config = results / f"cache-{layer}-proxy.yaml"
    config.write_text(proxy_config(port, upstream_url, layer, l2))
    proxy = children.proxy(config, port, pinning.proxy, name=f"cache {layer} proxy")
    return f"http://127.0.0.1:{port}", proxy


@dataclass
class CacheStatuses:
    """Observer: how many answers carried each x-edgeproxy-cache value."""

    counts: Counter[str] = field(default_factory=Counter)

    def __call__(self, response: aiohttp.ClientResponse, data: bytes) -> None:
        self.counts[response.headers.get("x-edgeproxy-cache", _UNSET)] += 1


async def _ask(
    client: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str] | None = None
) -> str:
    """One request; its x-edgeproxy-cache value. A failed answer ends the scenario: the cache
    cannot be filled from errors."""
    sent = load.HEADERS if headers is None else {**load.HEADERS, **headers}
    async with client.post(url, data=body, headers=sent) as response:
        data = await response.read()
        if response.status != 200:
            raise RuntimeError(f"cache prefill: HTTP {response.status}: {data[:300]!r}")
        return response.headers.get("x-edgeproxy-cache", _UNSET)


async def _stored_in_redis(l2: RedisPrefix) -> int:
    client = redis.asyncio.Redis.from_url(
        l2.url, socket_timeout=_REDIS_TIMEOUT, socket_connect_timeout=_REDIS_TIMEOUT
    )
    try:
        return len([key async for key in client.scan_iter(match=l2.entries_pattern, count=1000)])
    finally:
        await client.aclose()


async def prefill(url: str, scenario: Scenario, l2: RedisPrefix | None) -> dict[str, Any]:
    """Ask each of the scenario's questions once (misses, which the proxy stores in the
    background), then wait, bounded, until the answers are where the hits will come from:
    for L1 until the question comes back `hit-l1`, for L2 until Redis holds every entry, for
    the semantic layer until each pair's paraphrase comes back `hit-semantic`.
    Any failure is a RuntimeError: the scenario cannot measure hits."""
    try:
        if scenario.outcome == "miss":
            return {}  # nothing to fill: every question is new
        if scenario.cache == "semantic":
            return await _prefill_semantic(url, scenario)
        return await _prefill(url, scenario, l2)
    except (aiohttp.ClientError, redis.RedisError, OSError) as err:
        raise RuntimeError(f"cache prefill: {err!r}") from err


async def _prefill(url: str, scenario: Scenario, l2: RedisPrefix | None) -> dict[str, Any]:
    bodies = scenario.bodies()
    statuses: Counter[str] = Counter()
    deadline = time.monotonic() + PREFILL_SECONDS
    client = load.session(1)
    try:
        for body in bodies:
            statuses[await _ask(client, url, body)] += 1
        if scenario.cache == "l1":
            while (status := await _ask(client, url, bodies[0])) != "hit-l1":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cache prefill: still {status!r} after the prefill")
                await asyncio.sleep(PREFILL_POLL)
            return {"prefill_statuses": dict(statuses), "l2_entries": None}
    finally:
        await client.close()
    if l2 is None:
        raise ValueError("the l2 prefill needs Redis")
    while (stored := await _stored_in_redis(l2)) < len(bodies):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"cache prefill: Redis holds {stored} of {len(bodies)} entries under "
                f"{l2.prefix} after {PREFILL_SECONDS:g} s"
            )
        await asyncio.sleep(PREFILL_POLL * 10)
    return {"prefill_statuses": dict(statuses), "l2_entries": stored}


async def _prefill_semantic(url: str, scenario: Scenario) -> dict[str, Any]:
    """Each pair's question asked (stored, then indexed in the background; `hit-l1` when an
    earlier scenario of the same proxy asked it already), then each paraphrase polled until
    it is a semantic hit. The polls say `no-store`: one that misses is answered upstream but
    not stored, so the paraphrase never gets an exact entry of its own."""
    statuses: Counter[str] = Counter()
    polls = 0
    started = time.monotonic()
    deadline = started + PREFILL_SECONDS
    client = load.session(1)
    try:
        for asked, _ in SEMANTIC_PAIRS:
            statuses[await _ask(client, url, scenario.asking(asked))] += 1
        for _, paraphrase in SEMANTIC_PAIRS:
            body = scenario.asking(paraphrase)
            while (status := await _ask(client, url, body, _NO_STORE)) != "hit-semantic":
                polls += 1
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"cache prefill: {paraphrase!r} still {status!r} after "
                        f"{PREFILL_SECONDS:g} s (its question stored and indexed?)"
                    )
                await asyncio.sleep(PREFILL_POLL)
    finally:
        await client.close()
    return {
        "prefill_statuses": dict(statuses),
        "semantic_pairs": len(SEMANTIC_PAIRS),
        "semantic_prefill_polls_missed": polls,
        "semantic_prefill_seconds": round(time.monotonic() - started, 3),
    }


def hit_fields(scenario: Scenario, counts: Counter[str]) -> dict[str, Any]:
    """What the measured proxy answers said about themselves, and whether enough of them were
    what the scenario measures (its hits, or its misses)."""
    want = scenario.expected
    layer = scenario.cache
    answers = sum(counts.values())
    share = counts[want] / answers if answers and want is not None else None
    return {
        "cache_layer": layer,
        "cache_expected": want,
        "cache_answers": answers,
        "cache_statuses": dict(counts.most_common()),
        "cache_hit_share": share,
        "cache_hits_ok": share is not None and share >= HIT_SHARE_REQUIRED,
    }


def hit_problem(row: dict[str, Any]) -> str | None:
    """Why a cache scenario failed or its numbers do not describe hits; None when they do
    (and for every other scenario)."""
    if "failed" in row:
        return f"{row['scenario']}: {row['failed']}"
    if "cache_layer" not in row or row["cache_hits_ok"]:
        return None
    share = row["cache_hit_share"]
    shown = "no answers" if share is None else f"{share * 100:.2f} %"
    return (
        f"{row['scenario']}: {row['cache_expected']} in {shown} of the proxy's "
        f"{row['cache_answers']:,} measured answers (required ≥ {HIT_SHARE_REQUIRED * 100:g} %); "
        f"x-edgeproxy-cache seen: {row['cache_statuses']}. These numbers do not measure "
        f"{row['cache_expected']} answers."
    )


async def measure(bench: Bench, scenario: Scenario, l2: RedisPrefix | None) -> dict[str, Any]:
    """Prefill, then the usual direct-versus-proxy measurement, counting the proxy's
    x-edgeproxy-cache values over the measured runs."""
    assert scenario.cache is not None, "a cache scenario names its layer"
    filled = await prefill(bench.proxy_url, scenario, l2)
    statuses = CacheStatuses()
    row = await bench.measure(scenario, statuses)
    row.update(hit_fields(scenario, statuses.counts))
    row.update(filled)
    row["variants"] = scenario.variants
    row["redis_prefix"] = l2.prefix if scenario.cache == "l2" and l2 is not None else None
    return row


def not_measured(scenario: Scenario, outcome: str, reason: str) -> dict[str, Any]:
    """The row of a scenario that was `skipped` (it cannot run here: no Redis) or `failed`
    (its prefill did), saying why; the other scenarios' rows are still reported."""
    return {
        "scenario": scenario.name,
        "description": scenario.about,
        "concurrency": scenario.concurrency,
        "model": scenario.model,
        outcome: reason,
    }
