"""What one request did, as a value: built once, after its answer, from what the stages set.

Every consumer of per-request telemetry reads this record and nothing else: the Prometheus
counters, the access log, the telemetry events, incident detection, feedback. It is built
from data already gathered (never by reading a body again), after the client has its answer,
so none of its cost is latency; a request that is still streaming has no record yet.

Times are loop seconds. `duration` runs from the request's first byte off the socket (queueing
included) to the end of its answer; `upstream_wait` is the time spent waiting on providers
(each attempt's wait for its answer's head, then each read of its body); `overhead` is the
rest, what the proxy itself added.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from edgeproxy.exchange import Exchange
from edgeproxy.pricing import ModelPrice, PricingTable, cost

log = logging.getLogger("edgeproxy.pricing")
# Cache outcomes that made no provider call: their cost is what the cache saved.
FREE = frozenset({"hit-l1", "hit-l2", "hit-semantic", "coalesced"})
_MAX_PRICED = 4096  # (provider kind, model) prices remembered


@dataclass(slots=True)
class RequestRecord:
    """A value nothing changes once made; not frozen, which costs every request 2 µs (26
    fields set through object.__setattr__)."""

    request_id: str
    route: str  # the operation: chat, completions, embeddings, responses, messages, count_tokens
    model: str  # as the client asked (never a metric label: unbounded)
    group: str | None  # the model group it resolved to (bounded: the configured ones)
    provider: str | None
    deployment: str | None
    status: int
    cache: str | None  # x-edgeproxy-cache, or None when the cache is off
    attempts: int
    fallback: bool  # answered by a deployment of a fallback group, not the asked one
    stream: bool
    key_id: str | None
    team: str | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float  # what the provider charged for it
    saved_usd: float  # what a cache answer would have cost
    started: float
    wall: float  # when its answer ended, in epoch seconds (stamps its log line and event)
    duration: float
    queued: float  # from the first byte read to the pipeline's start
    cache_time: float | None  # the cache stage's lookup, when it ran
    upstream_wait: float
    upstream_ttfb: float | None

    @property
    def overhead(self) -> float:
        return max(0.0, self.duration - self.upstream_wait)


@dataclass(frozen=True, slots=True)
class Forwarded:
    """A call forwarded without being read, once its answer ended (`status` 499: the client
    left)."""

    request_id: str
    key_id: str | None
    team: str | None
    endpoint: str  # "passthrough", or the stored-response call ("responses.retrieve", ...)
    method: str
    path: str
    provider: str | None  # None: refused before any was asked
    status: int
    duration: float  # seconds, from the request's first byte


class Costing:
    """Prices answers with the pricing table: a provider's answer at its deployment's price,
    a cache answer at the price of its group's first deployment (what it would have cost).
    Each (provider kind, model) is looked up in the table once, and one the table does not
    price is logged then. One instance serves the metrics, the cost header and budgets."""

    __slots__ = ("_prices", "_table")

    def __init__(self, table: PricingTable) -> None:
        self._table = table
        self._prices: dict[tuple[str, str], ModelPrice | None] = {}

    def price(self, kind: str, model: str) -> ModelPrice | None:
        key = (kind, model)
        try:
            return self._prices[key]
        except KeyError:
            if len(self._prices) >= _MAX_PRICED:  # model names may come from clients
                self._prices.clear()
            found = self._prices[key] = self._table.price(kind, model)
            if found is None and kind != "mock":  # the offline mock is free, as it should be
                log.warning(
                    "no price for %s model %s: its answers cost 0 in metrics and budgets "
                    "(add it under pricing.overrides)",
                    kind,
                    model[:128],
                )
            return found

    def of(self, exchange: Exchange) -> tuple[float, float]:
        """(cost, saved) in US dollars; 0 for what the table does not price."""
        usage = exchange.usage
        if usage is None:
            return 0.0, 0.0
        deployment = exchange.deployment
        if exchange.cache_status in FREE:
            group = exchange.group
            if group is None or not group.deployments:
                return 0.0, 0.0
            deployment = group.deployments[0]
            price = self.price(deployment.provider.config.kind, deployment.model or exchange.model)
            return 0.0, cost(price, usage) if price is not None else 0.0
        if deployment is None:
            return 0.0, 0.0
        price = self.price(deployment.provider.config.kind, exchange.upstream_model)
        return (cost(price, usage) if price is not None else 0.0), 0.0


def _fell_back(exchange: Exchange) -> bool:
    group, deployment = exchange.group, exchange.deployment
    return group is not None and deployment is not None and deployment not in group.deployments


def record_of(exchange: Exchange, costing: Costing, now: float, wall: float) -> RequestRecord:
    """The record of `exchange`, whose answer ended at loop time `now`, epoch time `wall`."""
    usage = exchange.usage
    deployment = exchange.deployment
    caller = exchange.caller
    spent, saved = costing.of(exchange)
    return RequestRecord(
        request_id=exchange.request_id,
        route=exchange.operation.label,
        model=exchange.model,
        group=exchange.group.name if exchange.group is not None else None,
        provider=deployment.provider.name if deployment is not None else None,
        deployment=deployment.name if deployment is not None else None,
        status=exchange.status,
        cache=exchange.cache_status,
        attempts=exchange.attempts,
        fallback=_fell_back(exchange),
        stream=exchange.stream,
        key_id=caller.id if caller is not None else None,
        team=caller.team if caller is not None else None,
        input_tokens=usage.input_tokens if usage is not None else 0,
        output_tokens=usage.output_tokens if usage is not None else 0,
        cached_tokens=usage.cached_tokens if usage is not None else 0,
        cost_usd=spent,
        saved_usd=saved,
        started=exchange.started,
        wall=wall,
        duration=now - exchange.started,
        queued=exchange.queued,
        cache_time=exchange.cache_time,
        upstream_wait=exchange.upstream_wait,
        upstream_ttfb=exchange.upstream_ttfb,
    )
