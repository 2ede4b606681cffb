"""Request metrics: counts, latencies, tokens and money, from each request's record.

`observe(record)` runs once per request, after its answer; the records are counted in batches
of up to `SETTLE_AT`, and every reader (`families()` at scrape time, `snapshot()`, the status
page's `telemetry.stats`) counts those still waiting first (`settle`), so what it reads is
exact. Code run back to back over a batch is cheaper than run once per request among the data
path's code (telemetry/recorder.py measures it for its consumers); for these counts alone the
saving was within the measurement's noise. Every label is
bounded: routes are the six operations; model groups and providers are the configured ones
(a name the configuration does not know, such as the model of a 404, is `other`); statuses
are HTTP codes; key ids only those the operator listed (`telemetry.metrics.key_labels`), the
rest `other`. A client sending a thousand made-up model names adds no series.

Where an OpenTelemetry GenAI semantic convention exists, its metric is exported too, with its
attribute names (dots become underscores in Prometheus): `gen_ai.client.token.usage`,
`gen_ai.client.operation.duration`, `gen_ai.server.time_to_first_token`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from edgeproxy.telemetry.histogram import REQUEST_SECONDS, SHORT_SECONDS, TOKENS, Histogram
from edgeproxy.telemetry.record import Forwarded, RequestRecord

if TYPE_CHECKING:
    from prometheus_client import Metric

K = TypeVar("K")
SETTLE_AT = 128  # records waiting to be counted at most
OTHER = "other"
NONE = "none"
# OpenTelemetry's gen_ai.provider.name for each provider kind (metrics and spans).
GENAI_PROVIDERS = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "bedrock": "aws.bedrock",
    "mock": "edgeproxy.mock",
}
# gen_ai.operation.name of each route (metrics and spans).
GENAI_OPERATIONS = {
    "chat": "chat",
    "messages": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "responses": "chat",  # OpenAI's Responses API: a chat, as the conventions name it
    "count_tokens": "count_tokens",
}


class RequestMetrics:
    """Counters and histograms of every request this process answered."""

    def __init__(
        self,
        groups: Iterable[str],
        providers: dict[str, str],  # name -> kind
        key_labels: Iterable[str] = (),
        teams: Iterable[str] = (),
    ) -> None:
        self._pending: list[RequestRecord] = []
        self.relabel(groups, providers, key_labels, teams)
        self.in_flight = 0
        self.requests: defaultdict[tuple[str, str, str, str, str], int] = defaultdict(int)
        self.duration: dict[tuple[str, ...], Histogram] = {}
        self.overhead: dict[tuple[str, ...], Histogram] = {}
        self.ttfb: dict[tuple[str, ...], Histogram] = {}
        self.chunk_gaps = Histogram(SHORT_SECONDS)
        self.tokens: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.cost: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.saved: defaultdict[str, float] = defaultdict(float)
        self.retries: defaultdict[str, int] = defaultdict(int)
        self.fallbacks: defaultdict[str, int] = defaultdict(int)
        # Calls forwarded without being read (stored Responses answers, pass-through).
        self.forwarded: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.by_key: defaultdict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        self.by_team: defaultdict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        self.token_usage: dict[tuple[str, ...], Histogram] = {}
        self.operation: dict[tuple[str, ...], Histogram] = {}
        self.first_token: dict[tuple[str, ...], Histogram] = {}

    def relabel(
        self,
        groups: Iterable[str],
        providers: dict[str, str],
        key_labels: Iterable[str] = (),
        teams: Iterable[str] = (),
    ) -> None:
        """Bound the labels by a (reloaded) configuration; the counts so far stay."""
        self.settle()
        self._groups = frozenset(groups)
        self._providers = dict(providers)
        self._keys = frozenset(key_labels)
        self._teams = frozenset(teams)

    def observe(self, record: RequestRecord) -> None:
        pending = self._pending
        pending.append(record)
        if len(pending) >= SETTLE_AT:
            self.settle()

    def settle(self) -> None:
        """Count the records still waiting: before anything reads the numbers."""
        pending, self._pending = self._pending, []
        for record in pending:
            self._count(record)

    def _count(self, record: RequestRecord) -> None:
        group = record.group if record.group in self._groups else OTHER
        provider = record.provider if record.provider in self._providers else NONE
        cache = record.cache or "off"
        route = record.route
        self.requests[(route, group, provider, str(record.status), cache)] += 1
        _hist(self.duration, (route, group), REQUEST_SECONDS).observe(record.duration)
        _hist(self.overhead, (route,), SHORT_SECONDS).observe(record.overhead)
        if record.upstream_ttfb is not None:
            _hist(self.ttfb, (provider,), REQUEST_SECONDS).observe(record.upstream_ttfb)
        tokens = self.tokens
        tokens[(group, "input")] += record.input_tokens
        tokens[(group, "output")] += record.output_tokens
        tokens[(group, "cached")] += record.cached_tokens
        if record.cost_usd:
            self.cost[(group, provider)] += record.cost_usd
        if record.saved_usd:
            self.saved[group] += record.saved_usd
        if record.attempts > 1:
            self.retries[group] += record.attempts - 1
        if record.fallback:
            self.fallbacks[group] += 1
        if record.key_id is not None:
            mine = self.by_key[record.key_id if record.key_id in self._keys else OTHER]
            mine[0] += 1
            mine[1] += record.cost_usd
        if record.team is not None:
            ours = self.by_team[record.team if record.team in self._teams else OTHER]
            ours[0] += 1
            ours[1] += record.cost_usd
        self._genai(record, group, provider)

    def count_forwarded(self, call: Forwarded) -> None:
        """A forwarded call, by endpoint, provider (configured names only) and status."""
        provider = call.provider if call.provider in self._providers else NONE
        self.forwarded[(call.endpoint, provider, str(call.status))] += 1

    def _genai(self, record: RequestRecord, group: str, provider: str) -> None:
        operation = GENAI_OPERATIONS.get(record.route, record.route)
        system = GENAI_PROVIDERS.get(self._providers.get(provider, ""), provider)
        where = (operation, system, group)
        _hist(self.operation, where, REQUEST_SECONDS).observe(record.duration)
        if record.stream and record.upstream_ttfb is not None:
            _hist(self.first_token, where, REQUEST_SECONDS).observe(record.upstream_ttfb)
        if record.input_tokens or record.output_tokens:
            usage = self.token_usage
            _hist(usage, (*where, "input"), TOKENS).observe(record.input_tokens)
            _hist(usage, (*where, "output"), TOKENS).observe(record.output_tokens)

    def snapshot(self) -> dict[str, Any]:
        """Every number as plain JSON values, for another process to `absorb`."""
        self.settle()
        return {
            "counters": {
                name: [[_plain(key), value] for key, value in getattr(self, name).items()]
                for name in _COUNTERS
            },
            "owners": {name: [[k, *v] for k, v in getattr(self, name).items()] for name in _OWNERS},
            "histograms": {
                name: [
                    [list(key), h.bounds, h.counts, h.sum] for key, h in getattr(self, name).items()
                ]
                for name in _HISTOGRAMS
            },
            "chunk_gaps": [self.chunk_gaps.counts, self.chunk_gaps.sum],
            "in_flight": self.in_flight,
        }

    def absorb(self, snapshot: Mapping[str, Any], *, live: bool) -> None:
        """Add another process's numbers (`snapshot`) to these; its in-flight requests only
        while it is `live` (a worker that exited has none, but its counts stand)."""
        for name, items in snapshot["counters"].items():
            table = getattr(self, name)
            for key, value in items:
                table[_key(key)] += value
        for name, items in snapshot["owners"].items():
            owners = getattr(self, name)
            for key, count, usd in items:
                mine = owners[key]
                mine[0] += count
                mine[1] += usd
        for name, items in snapshot["histograms"].items():
            table = getattr(self, name)
            for key, bounds, counts, total in items:
                other = Histogram(bounds)
                other.counts, other.sum = list(counts), total
                _hist(table, tuple(key), tuple(bounds)).merge(other)
        gaps = Histogram(self.chunk_gaps.bounds)
        gaps.counts, gaps.sum = list(snapshot["chunk_gaps"][0]), snapshot["chunk_gaps"][1]
        self.chunk_gaps.merge(gaps)
        if live:
            self.in_flight += snapshot["in_flight"]

    def empty_like(self) -> RequestMetrics:
        """New metrics with the same bounded labels, holding nothing yet."""
        return RequestMetrics(self._groups, self._providers, self._keys, self._teams)

    def families(self) -> Iterator[Metric]:
        self.settle()
        requests = CounterMetricFamily(
            "edgeproxy_requests",
            "API requests answered, by route, model group, provider, status and cache result.",
            labels=["route", "model_group", "provider", "status", "cache"],
        )
        for labels, count in self.requests.items():
            requests.add_metric(list(labels), count)
        yield requests
        forwarded = CounterMetricFamily(
            "edgeproxy_forwarded_requests",
            "Calls forwarded without being read (stored Responses answers, pass-through), by "
            "endpoint, provider and status.",
            labels=["endpoint", "provider", "status"],
        )
        for call, count in self.forwarded.items():
            forwarded.add_metric(list(call), count)
        yield forwarded
        yield GaugeMetricFamily(
            "edgeproxy_requests_in_flight", "API requests being answered now.", self.in_flight
        )
        yield _histograms(
            "edgeproxy_request_duration_seconds",
            "From the request's first byte read (queueing included) to the end of its answer.",
            ["route", "model_group"],
            self.duration,
        )
        yield _histograms(
            "edgeproxy_proxy_overhead_seconds",
            "A request's duration less the time spent waiting on providers: what the proxy "
            "itself added, queueing included.",
            ["route"],
            self.overhead,
        )
        yield _histograms(
            "edgeproxy_upstream_ttfb_seconds",
            "From sending a request upstream to its answer's head (a stream's first event).",
            ["provider"],
            self.ttfb,
        )
        yield _histograms(
            "edgeproxy_stream_chunk_gap_seconds",
            "Time waited for each next chunk of a provider's streamed answer.",
            [],
            {(): self.chunk_gaps},
        )
        yield from self._money()
        yield from self._genai_families()

    def _money(self) -> Iterator[Metric]:
        tokens = CounterMetricFamily(
            "edgeproxy_tokens",
            "Tokens of answered requests (cached: the part of the input a provider's prompt "
            "cache served).",
            labels=["model_group", "type"],
        )
        for labels, count in self.tokens.items():
            tokens.add_metric(list(labels), count)
        cost = CounterMetricFamily(
            "edgeproxy_cost_usd",
            "What providers charged, at the pricing table's prices.",
            labels=["model_group", "provider"],
        )
        for labels, usd in self.cost.items():
            cost.add_metric(list(labels), usd)
        saved = CounterMetricFamily(
            "edgeproxy_cache_saved_usd",
            "What the answers the cache gave would have cost.",
            labels=["model_group"],
        )
        for group, usd in self.saved.items():
            saved.add_metric([group], usd)
        retries = CounterMetricFamily(
            "edgeproxy_retries",
            "Upstream attempts after a request's first.",
            labels=["model_group"],
        )
        for group, count in self.retries.items():
            retries.add_metric([group], count)
        fallbacks = CounterMetricFamily(
            "edgeproxy_fallbacks",
            "Requests answered by a fallback group's deployment.",
            labels=["model_group"],
        )
        for group, count in self.fallbacks.items():
            fallbacks.add_metric([group], count)
        yield from (tokens, cost, saved, retries, fallbacks)
        yield from _per_owner("key", self.by_key)
        yield from _per_owner("team", self.by_team)

    def _genai_families(self) -> Iterator[Metric]:
        attributes = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"]
        yield _histograms(
            "gen_ai_client_token_usage",
            "OpenTelemetry GenAI: tokens used by a request, by type.",
            [*attributes, "gen_ai_token_type"],
            self.token_usage,
        )
        yield _histograms(
            "gen_ai_client_operation_duration_seconds",
            "OpenTelemetry GenAI: the duration of a request.",
            attributes,
            self.operation,
        )
        yield _histograms(
            "gen_ai_server_time_to_first_token_seconds",
            "OpenTelemetry GenAI: time to a streamed answer's first token.",
            attributes,
            self.first_token,
        )


_COUNTERS = ("requests", "tokens", "cost", "saved", "retries", "fallbacks", "forwarded")
_OWNERS = ("by_key", "by_team")
_HISTOGRAMS = ("duration", "overhead", "ttfb", "token_usage", "operation", "first_token")


def _plain(key: str | tuple[str, ...]) -> str | list[str]:
    return list(key) if isinstance(key, tuple) else key


def _key(key: str | list[str]) -> str | tuple[str, ...]:
    return tuple(key) if isinstance(key, list) else key


def _hist(table: dict[K, Histogram], key: K, bounds: tuple[float, ...]) -> Histogram:
    found = table.get(key)
    if found is None:
        found = table[key] = Histogram(bounds)
    return found


def _histograms(
    name: str, doc: str, labels: list[str], table: Mapping[tuple[str, ...], Histogram]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, histogram in table.items():
        family.add_metric(list(values), list(histogram.cumulative()), histogram.sum)
    return family


def _per_owner(owner: str, table: dict[str, list[float]]) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        f"edgeproxy_{owner}_requests",
        f"API requests by {owner} (the operator's listed ones; the rest are {OTHER}).",
        labels=[owner],
    )
    cost = CounterMetricFamily(
        f"edgeproxy_{owner}_cost_usd", f"What providers charged, by {owner}.", labels=[owner]
    )
    for name, (count, usd) in table.items():
        requests.add_metric([name], count)
        cost.add_metric([name], usd)
    yield from (requests, cost)
