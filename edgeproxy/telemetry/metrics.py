"""Prometheus metrics, read from the counters the proxy keeps anyway, at scrape time.

The request path increments plain integers (in the cache layers, the deployment health
records, the dispatcher); nothing on it touches prometheus_client. A scrape of `/metrics` on
the admin listener turns those counters into metric families. Only what cannot be counted
that way, the latency of L2 lookups (network round trips), is a real histogram.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edgeproxy.routing.breaker import BreakerState
from edgeproxy.telemetry.counters import RATELIMIT_BACKEND_ERRORS
from edgeproxy.telemetry.latency import L2_LOOKUP_SECONDS, SEMANTIC_LOOKUP_SECONDS

if TYPE_CHECKING:
    from prometheus_client import Metric

    from edgeproxy.reload import ReloadStatus
    from edgeproxy.state import ProxyState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
# The L2 store's counters, as lookup results (`skipped`: not tried, its breaker open).
_L2_RESULTS = {
    "hits": "hit",
    "misses": "miss",
    "errors": "error",
    "timeouts": "timeout",
    "skipped": "skipped",
}


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


class ProxyCollector(Collector):
    """Cache, routing and background counters of one running proxy (and its configuration
    reloads, when it serves from a file that can be reloaded)."""

    def __init__(
        self, state: ProxyState, reloads: ReloadStatus | None = None, own: bool = False
    ) -> None:
        self._state = state
        self._reloads = reloads
        self._own = own

    def collect(self) -> Iterator[Metric]:
        shared = None if self._own else self._state.shared_metrics
        requests = self._state.requests if shared is None else shared.merged()
        yield from requests.families()
        yield from self._cache()
        yield from self._routing()
        yield from self._background()
        yield from self._guardrails()
        yield from self._refusals()
        yield from self._budgets()
        yield from self._config_reloads()
        yield from L2_LOOKUP_SECONDS.collect()
        yield from SEMANTIC_LOOKUP_SECONDS.collect()
        yield from RATELIMIT_BACKEND_ERRORS.collect()

    def _cache(self) -> Iterator[Metric]:
        stage = self._state.cache
        if stage is None:
            return
        requests = _counter(
            "edgeproxy_cache_requests", "Requests by what the cache did.", ["outcome"]
        )
        for outcome, count in stage.outcomes.items():
            requests.add_metric([outcome], count)
        yield requests
        yield CounterMetricFamily(
            "edgeproxy_cache_coalesced",
            "Requests answered by waiting on an identical request in flight.",
            value=stage.outcomes["coalesced"],
        )
        memory = stage.cache.memory
        lookups = _counter(
            "edgeproxy_cache_lookups", "Lookups by layer and result.", ["layer", "result"]
        )
        lookups.add_metric(["l1", "hit"], memory.hits)
        lookups.add_metric(["l1", "miss"], memory.misses)
        remote = stage.cache.remote
        if remote is not None:
            l2 = remote.snapshot()
            for field, result in _L2_RESULTS.items():
                seen = l2.get(field)
                if isinstance(seen, int):
                    lookups.add_metric(["l2", result], seen)
        yield lookups
        removed = _counter("edgeproxy_cache_removed", "L1 entries removed, by why.", ["reason"])
        removed.add_metric(["evicted"], memory.evictions)
        removed.add_metric(["expired"], memory.expirations)
        yield removed
        yield CounterMetricFamily(
            "edgeproxy_cache_rejected", "Answers too large to keep in L1.", value=memory.rejected
        )
        yield CounterMetricFamily(
            "edgeproxy_cache_stores", "Complete answers stored.", value=stage.cache.stores
        )
        if stage.semantic is not None:
            semantic = _counter(
                "edgeproxy_cache_semantic",
                "Semantic layer: hits served, would-be hits in shadow mode, matches the guard "
                "refused, lookups over budget, and whether shadow hits agreed with the fresh "
                "answer.",
                ["event"],
            )
            for event, count in stage.semantic.counts.items():
                semantic.add_metric([event], count)
            yield semantic
        yield GaugeMetricFamily("edgeproxy_cache_entries", "Entries in L1.", value=memory.entries)
        yield GaugeMetricFamily("edgeproxy_cache_bytes", "Bytes held by L1.", value=memory.bytes)

    def _routing(self) -> Iterator[Metric]:
        table = self._state.table
        labels = ["deployment"]
        requests = _counter("edgeproxy_deployment_requests", "Upstream attempts.", labels)
        failures = _counter("edgeproxy_deployment_failures", "Failed upstream attempts.", labels)
        hedges = _counter("edgeproxy_deployment_hedges", "Hedges raced against it.", labels)
        opened = _counter("edgeproxy_breaker_opened", "Times its breaker opened.", labels)
        state = _gauge("edgeproxy_breaker_state", "0 closed, 1 half-open, 2 open.", labels)
        in_flight = _gauge("edgeproxy_deployment_in_flight", "Requests in flight.", labels)
        ttfb = _gauge(
            "edgeproxy_deployment_ttfb_seconds", "Moving average of time to first byte.", labels
        )
        for name, health in table.health.items():
            requests.add_metric([name], health.requests)
            failures.add_metric([name], health.failures)
            hedges.add_metric([name], health.hedges)
            opened.add_metric([name], health.breaker.opened)
            state.add_metric([name], _BREAKER_VALUE[health.breaker.state])
            in_flight.add_metric([name], health.in_flight)
            if health.ttfb.value is not None:
                ttfb.add_metric([name], health.ttfb.value)
        yield from (requests, failures, hedges, opened, state, in_flight, ttfb)
        denied = _counter(
            "edgeproxy_retry_budget_denied", "Retries refused by the retry budget.", ["group"]
        )
        for group in table.groups:
            denied.add_metric([group.name], group.budget.denied)
        yield denied

    def _background(self) -> Iterator[Metric]:
        background = self._state.background
        yield GaugeMetricFamily(
            "edgeproxy_background_pending", "Background tasks running.", value=background.pending
        )
        yield CounterMetricFamily(
            "edgeproxy_background_dropped",
            "Background work dropped because the queue was full.",
            value=background.dropped,
        )
        yield CounterMetricFamily(
            "edgeproxy_background_failed", "Background tasks that failed.", value=background.failed
        )

    def _guardrails(self) -> Iterator[Metric]:
        decisions = self._state.decisions
        if decisions is not None:
            family = _counter(
                "edgeproxy_guardrail_decisions",
                "Guardrail decisions by rule and by what the proxy did (flag: noted, not enforced; "
                "error: the guard gave no decision).",
                ["rule", "action"],
            )
            for rule, action, count in decisions.samples():
                family.add_metric([rule, action], count)
            yield family
        audit = self._state.audit
        if audit is not None:
            lost = _counter(
                "edgeproxy_audit_lost",
                "Audit records not written: the buffer was full (dropped) or the file refused "
                "the write (failed).",
                ["reason"],
            )
            lost.add_metric(["dropped"], audit.dropped)
            lost.add_metric(["failed"], audit.failed)
            yield lost

    def _refusals(self) -> Iterator[Metric]:
        guards = self._state.guards
        if guards.limits is not None:
            limits = _counter(
                "edgeproxy_ratelimit_refusals",
                "Requests refused by a rate limit: the kind of scope (key, team, group) and the "
                "limit (rpm, tpm, parallel; store: the shared Redis down, failing closed).",
                ["scope", "limit"],
            )
            for (scope, limit), count in guards.limits.refused.items():
                limits.add_metric([scope, limit], count)
            yield limits
        if guards.spend is not None:
            budgets = _counter(
                "edgeproxy_budget_refusals",
                "Requests refused by a spent budget: the kind of scope (key, team) and the "
                "period (day, month; store: the shared Redis down, failing closed).",
                ["scope", "period"],
            )
            for (scope, period), count in guards.spend.refused.items():
                budgets.add_metric([scope, period], count)
            yield budgets

    def _budgets(self) -> Iterator[Metric]:
        budgets = self._state.budgets
        if budgets is None:
            return
        errors = _counter(
            "edgeproxy_budget_backend_errors",
            "Budget store calls that failed (Redis errors and timeouts), by operation; a "
            "failed check answered by the store's policy, a failed record lost its spend.",
            ["operation"],
        )
        for operation, count in budgets.errors.items():
            errors.add_metric([operation], count)
        yield errors

    def _config_reloads(self) -> Iterator[Metric]:
        reloads = self._reloads
        if reloads is None:
            return
        total = _counter(
            "edgeproxy_config_reloads",
            "Configuration reloads by result: success (applied), failure (refused as invalid, "
            "or its resources would not open; the running configuration stayed), unchanged.",
            ["result"],
        )
        for result, count in reloads.counts.items():
            total.add_metric([result], count)
        yield total
        yield GaugeMetricFamily(
            "edgeproxy_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded or reloaded with success (Unix seconds).",
            value=reloads.last_success,
        )
        yield GaugeMetricFamily(
            "edgeproxy_config_reload_failed",
            "1 while the last reload was refused and an older configuration serves, else 0.",
            value=0 if reloads.last_failure is None else 1,
        )


def exposition(state: ProxyState, reloads: ReloadStatus | None = None, own: bool = False) -> bytes:
    """The text a Prometheus scrape of this proxy gets (`own`: this process's numbers alone,
    without the other workers' of `telemetry.metrics.shared_dir`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProxyCollector(state, reloads, own))
    return generate_latest(registry)
