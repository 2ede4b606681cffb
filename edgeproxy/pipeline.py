"""The request pipeline: the map of the program.

A request passes these stages in order; each either continues (returns None) or answers
(returns a reply). Only the stages the configuration enables are built, once, at load.

    0. authenticate  (when auth.mode is keys; security/auth.py) the caller's virtual key, from
                 the configured ones or the Redis key store: 401 when missing or unknown,
                 before any other work
    1. route     resolve the public model (name, alias or pattern) to its group: 404 for an
                 unconfigured model, 403 for a group the caller's key may not use; read the
                 per-request strategy header (400 if unknown) and,
                 only where the group needs them (capability or context filters, cost-aware
                 strategies, token ceilings), what the request needs from a deployment
    2. limits    (when some rate limit is configured; security/limits.py) the caller's key's
                 and team's RPM, TPM and parallel limits and the group's, in one all-or-nothing
                 check, in process or in Redis: 429 with the dialect's rate-limit headers;
                 tokens reserved from an estimate, settled on the real usage
    3. budgets   (when a key or team has a budget; security/spend.py) 429 insufficient_quota
                 once the day's or month's spend is reached; the answer's cost charged after it
    4. screen    (when a guardrail policy applies; security/screen.py) input limits,
                 blocklist, prompt-injection rules, personal data (refused, or replaced by
                 placeholders that the relay restores in the answer), the Shield hook: 400
                 content_filter, 413, or 503 when a fail-closed guard cannot answer
    5. lookup_cache  (when cache.enabled; cache/lookup.py) a cacheable request the policy
                 lets look up is answered from the exact cache (L1, then L2) with no upstream
                 call, from the semantic layer for groups that opted in (a near-identical last
                 user turn, everything else exact; or counted only, in shadow mode), or waits
                 on an identical request already in flight (coalescing);
                 otherwise, if the answer may be kept, this request leads: the edge gets a
                 capture to feed, which stores the complete answer and shares it with waiters
    6. dispatch  (terminal, routing/dispatch.py) choose a deployment by strategy among the
                 available ones (breaker, cooldown, local ceilings), shape the body for it
                 (model name mapped, or translated into the provider's dialect: 400 for what
                 cannot go), send it through the provider; retry, fail over to other
                 deployments and fallback groups, hedge; the reply is the upstream answer
                 (headers in, and a stream's first chunk) or a ProxyError

`Pipeline.embed` sends the semantic layer's own embeddings requests through route and
dispatch (never the cache), when an embeddings model group is its embedder.

What each stage sets on the per-request `Exchange`, and who reads it: see edgeproxy/exchange.py.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from edgeproxy import errors
from edgeproxy.config import STRATEGIES
from edgeproxy.dialects import openai
from edgeproxy.errors import ProxyError
from edgeproxy.exchange import Exchange, Reply, Stage
from edgeproxy.ids import fresh_id
from edgeproxy.operations import Operation
from edgeproxy.relay import read_whole, readable
from edgeproxy.routing.affinity import ResponseAffinity
from edgeproxy.routing.dispatch import Dispatch
from edgeproxy.routing.needs import needs_of
from edgeproxy.routing.router import ModelTable

STRATEGY_HEADER = "x-edgeproxy-strategy"
# Strategies that rank deployments by what the request will cost.
_COST_AWARE = frozenset({"cost", "hybrid"})


async def route(exchange: Exchange, table: ModelTable) -> Reply | None:
    """Stage 1: the model group, the strategy and (where needed) the request's needs."""
    group = table.resolve(exchange.model)
    if group is None:
        return errors.model_not_found(exchange.model)
    caller = exchange.caller
    if caller is not None and caller.models is not None and group.name not in caller.models:
        return errors.model_not_allowed(exchange.model)
    exchange.group = group
    asked = exchange.headers.get(STRATEGY_HEADER)
    if asked:
        strategy = asked.strip().lower()
        if strategy not in STRATEGIES:
            return errors.unknown_strategy(asked, STRATEGIES)
        exchange.strategy = strategy
    if group.reads_needs or exchange.strategy in _COST_AWARE:
        exchange.needs = needs_of(exchange.operation, exchange.payload, exchange.stream)
    return None


class Route:
    """Stage 1 bound to the model table."""

    __slots__ = ("_table",)

    def __init__(self, table: ModelTable) -> None:
        self._table = table

    def __call__(self, exchange: Exchange) -> Awaitable[Reply | None]:
        return route(exchange, self._table)


class Pipeline:
    """The enabled stages, in order (route among them), ending in `dispatch`."""

    __slots__ = ("clock", "dispatch", "stages", "table")

    def __init__(
        self,
        table: ModelTable,
        stages: tuple[Stage, ...],
        dispatch: Dispatch,
        clock: Callable[[], float],
    ) -> None:
        self.table = table
        self.stages = stages
        self.dispatch = dispatch
        self.clock = clock

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        """Vectors for `texts` from embeddings model group `model`, asked through routing like
        a client's request (translated for its provider; never from the cache). Raises
        ProxyError when the group cannot answer."""
        payload: dict[str, Any] = {"model": model, "input": texts}
        loop = asyncio.get_running_loop()
        exchange = Exchange(
            request_id=fresh_id(),
            operation=Operation.EMBEDDINGS,
            headers={},
            body=orjson.dumps(payload),
            payload=payload,
            model=model,
            stream=False,
            started=loop.time(),
        )
        reply = await route(exchange, self.table) or await self.dispatch(exchange)
        try:
            if isinstance(reply, ProxyError):
                raise reply
            status, headers, body = await read_whole(exchange, reply, openai, watch_usage=False)
            if status != 200:
                raise errors.upstream_broken(model, f"embeddings HTTP {status}")
            exchange.status = 200
            answer = orjson.loads(readable(exchange, headers, body))
            return [item["embedding"] for item in answer["data"]]
        finally:
            if not isinstance(reply, ProxyError):
                reply.close()
            exchange.settle(self.clock())

    async def run(self, exchange: Exchange) -> Reply:
        for stage in self.stages:
            reply = await stage(exchange)
            if reply is not None:
                return reply
        return await self.dispatch(exchange)


def build_pipeline(
    table: ModelTable,
    clock: Callable[[], float] = time.monotonic,
    rng: Callable[[], float] = random.random,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    cache: Stage | None = None,
    *,
    before_route: tuple[Stage, ...] = (),
    after_route: tuple[Stage, ...] = (),
    affinity: ResponseAffinity | None = None,
) -> Pipeline:
    """The stages for `table`: those that need no model group (authenticate), route, those
    that do (limits, budgets, screening), then the cache's when it is on (cache/lookup.py,
    inside its span when tracing is on). Clock, randomness and sleep are injected for tests."""
    stages = (*before_route, Route(table), *after_route, *(() if cache is None else (cache,)))
    return Pipeline(table, stages, Dispatch(clock, rng, sleep, affinity), clock)
