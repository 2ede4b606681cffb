"""What a PromQL expression reads, checked against what a scrape of /metrics holds.

An expression is parsed by `promql_parser` (the Python bindings of the promql-parser Rust
crate, PromQL as of Prometheus 2.45) and walked once. Every selector's metric name must be a
sample name of the scrape and every label it matches on one its samples carry; every label an
aggregation groups by (or drops with `without`), a binary operator matches `on` or copies with
`group_left`/`group_right`, must be one the expression under it still carries. The labels an
expression carries are followed through functions, aggregations and operators the way
Prometheus computes them, so `sum by (le) (...)` around a selector whose `le` was already
summed away is caught, not only a misspelt name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import promql_parser as promql
from prometheus_client.parser import text_string_to_metric_families

# Labels a scrape adds to every series: Prometheus's own (job, instance) and those the
# Prometheus Operator's PodMonitor adds from Kubernetes (helm/edgeproxy/templates/podmonitor.yaml).
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "container", "endpoint"})
# Series Prometheus makes for every target; the target does not export them.
SCRAPE_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
# Aggregations whose result keeps every label of the series they pick.
_SELECTING = frozenset({"topk", "bottomk", "limitk", "limit_ratio"})
# Functions of a counter's growth.
_RATES = frozenset({"rate", "irate", "increase"})

# The label names a vector carries; None when not known (a scalar, a string, a metric the
# scrape lacks), so that one mistake is reported once rather than at every level above it.
Labels = frozenset[str] | None


@dataclass(frozen=True)
class Scrape:
    """What one scrape of /metrics holds: every sample name (`_total`, `_bucket`... included)
    with the label names its samples carry, and which of them only ever grow (the samples of
    counters and histograms), to be read through rate() or increase()."""

    labels: Mapping[str, frozenset[str]]
    cumulative: frozenset[str]

    @classmethod
    def parse(cls, exposition: str) -> Scrape:
        labels: dict[str, set[str]] = {}
        cumulative: set[str] = set()
        for family in text_string_to_metric_families(exposition):
            for sample in family.samples:
                labels.setdefault(sample.name, set()).update(sample.labels)
                if family.type in ("counter", "histogram"):
                    cumulative.add(sample.name)
        named = {name: frozenset(found) for name, found in labels.items()}
        return cls(named, frozenset(cumulative))


@dataclass
class Check:
    """One expression's walk: the metric names it reads and what it got wrong."""

    scrape: Scrape
    metrics: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    result: Labels = None  # the labels of the whole expression's series

    def labels(self, node: promql.Expr) -> Labels:
        """The label names of what `node` evaluates to."""
        walk = _WALKS.get(type(node))
        return None if walk is None else walk(self, node)  # None: a number or a string

    def _instant(self, node: promql.VectorSelector) -> Labels:
        carried = self._selector(node)
        if node.name in self.scrape.cumulative:
            self.problems.append(f"{node}: a counter read as it is, not through rate()")
        return carried

    def _range(self, node: promql.MatrixSelector) -> Labels:
        return self._selector(node.vector_selector)

    def _inner(self, node: promql.ParenExpr | promql.UnaryExpr | promql.SubqueryExpr) -> Labels:
        return self.labels(node.expr)

    def _require(self, names: Iterable[str], carried: Labels, where: str) -> None:
        if carried is None:
            return
        missing = sorted(set(names) - carried)
        if missing:
            self.problems.append(f"{where}: no label {', '.join(missing)} (has {sorted(carried)})")

    def _selector(self, node: promql.VectorSelector) -> Labels:
        name = node.name
        if name is None:
            self.problems.append(f"{node}: a selector without a metric name")
            return None
        self.metrics.add(name)
        if name in SCRAPE_SERIES:
            carried = TARGET_LABELS
        elif name in self.scrape.labels:
            carried = self.scrape.labels[name] | TARGET_LABELS
        else:
            self.problems.append(f"{name}: no such sample in the scrape")
            return None
        matchers = node.matchers.matchers + [
            m for group in node.matchers.or_matchers for m in group
        ]
        self._require((m.name for m in matchers if m.name != "__name__"), carried, str(node))
        return carried

    def _call(self, node: promql.Call) -> Labels:
        name = node.func.name
        if name in _RATES:
            self._rated(node.args[0], name)
        arguments = [self.labels(argument) for argument in node.args]
        if node.func.return_type == promql.ValueType.Scalar:
            return None
        vectors = [labels for labels in arguments if labels is not None]
        if not vectors:
            return None
        carried = frozenset[str]().union(*vectors)
        if name == "histogram_quantile":
            self._require(["le"], carried, f"{name}(...)")
            return carried - {"le"}
        if name in ("label_replace", "label_join"):
            strings = [argument.val for argument in node.args[1:]]
            sources = strings[2:3] if name == "label_replace" else strings[2:]
            self._require((source for source in sources if source), carried, f"{name}(...)")
            return carried | {strings[0]}
        return carried

    def _rated(self, argument: promql.Expr, function: str) -> None:
        """rate() and increase() are for what only grows, not for a gauge."""
        if isinstance(argument, promql.MatrixSelector):
            name = argument.vector_selector.name
            if name in self.scrape.labels and name not in self.scrape.cumulative:
                self.problems.append(f"{function}({argument}): {name} is a gauge")

    def _aggregate(self, node: promql.AggregateExpr) -> Labels:
        inner = self.labels(node.expr)
        operation, param = str(node.op), node.param
        if param is not None:
            self.labels(param)
        modifier = node.modifier
        if operation in _SELECTING:
            return inner
        if modifier is None:
            carried: Labels = frozenset()
        else:
            grouping = frozenset(modifier.labels)
            by = modifier.type == promql.AggModifierType.By
            self._require(grouping, inner, f"{operation} {'by' if by else 'without'}")
            carried = grouping if by else (None if inner is None else inner - grouping)
        if isinstance(param, promql.StringLiteral) and carried is not None:
            carried |= {param.val}  # count_values: the label its counts are by
        return carried

    def _binary(self, node: promql.BinaryExpr) -> Labels:
        left, right = self.labels(node.lhs), self.labels(node.rhs)
        if left is None or right is None:
            return left if right is None else right  # a scalar side keeps the vector's labels
        operation = str(node.op)
        modifier = node.modifier
        matching = None if modifier is None else modifier.matching
        names = frozenset[str]() if matching is None else frozenset(matching.labels)
        on = matching is not None and matching.type == promql.LabelModifierType.Include
        if on:
            self._require(names, left, f"left of {operation} on")
            self._require(names, right, f"right of {operation} on")
        elif names:
            self._require(names, left | right, f"{operation} ignoring")
        if operation in ("and", "unless"):
            return left
        if operation == "or":
            return left | right
        card = None if modifier is None else modifier.card
        copied = frozenset[str]([] if modifier is None else modifier.group_labels or [])
        if card == promql.VectorMatchCardinality.ManyToOne:
            self._require(copied, right, f"{operation} group_left")
            return left | copied
        if card == promql.VectorMatchCardinality.OneToMany:
            self._require(copied, left, f"{operation} group_right")
            return right | copied
        return names & left if on else left - names


_WALKS: dict[type[promql.Expr], Callable[[Check, Any], Labels]] = {
    promql.VectorSelector: Check._instant,
    promql.MatrixSelector: Check._range,
    promql.Call: Check._call,
    promql.AggregateExpr: Check._aggregate,
    promql.BinaryExpr: Check._binary,
    promql.ParenExpr: Check._inner,
    promql.UnaryExpr: Check._inner,
    promql.SubqueryExpr: Check._inner,
}


def check(expression: str, scrape: Scrape) -> Check:
    """Walk `expression` against `scrape`."""
    walk = Check(scrape)
    walk.result = walk.labels(promql.parse(expression))
    return walk
