"""Routing recommendations (`GET /admin/recommendations`): per model group, the cheapest
deployment whose quality and latency stay within bounds of the best, the data behind it, and
what it would save per 1,000 requests against the group's traffic now. It only suggests; an
operator changes weights or strategy.

Per deployment of a group: its quality (the mean of its latest feedback scores), its median
time to first byte (its latest answers), and its cost per 1,000 requests (what the group's
requests to it within the ledger's window cost, as priced when they were served). A deployment
is compared once it has `min_count` scores, `min_count` requests in the window and a measured
latency; it may be recommended only if the pricing table prices its model too (an unpriced
answer is recorded as free, which must not make it the cheapest). Among the compared ones the
best quality and the best latency set the bounds: quality at least best - quality_tolerance
(score units), median latency at most best * (1 + latency_tolerance). The cheapest within both
is recommended; ties go to the better quality, then the lower latency, then config order.
Savings are the cost per 1,000 requests of the group's whole traffic in the window minus the
recommended deployment's; they may be negative (the traffic now goes to a cheaper deployment
outside the bounds) and are unknown when some of that traffic went to an unpriced deployment.

Costs compare fairly when deployments get the same kind of requests (weighted routing draws
them at random); a strategy or filter that sends long prompts to one deployment skews them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from edgeproxy.pricing import NANOS_PER_USD, PricingTable
from edgeproxy.routing.router import Deployment, ModelGroup, ModelTable
from edgeproxy.telemetry.feedback import Feedback
from edgeproxy.telemetry.feedback_settings import FeedbackSettings

# A bound met exactly is met, whatever float rounding says.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Bounds:
    quality_tolerance: float  # score units below the best quality
    latency_tolerance: float  # a fraction above the best median time to first byte
    min_count: int  # scores, and requests in the window, before a deployment is compared

    @classmethod
    def of(cls, settings: FeedbackSettings) -> Bounds:
        return cls(settings.quality_tolerance, settings.latency_tolerance, settings.min_count)


@dataclass(frozen=True, slots=True)
class _Row:
    """One deployment of a group, as measured."""

    deployment: Deployment
    requests: int
    cost_nanos: int
    priced: bool
    quality: float | None
    scores: int
    labels: dict[str, int]
    ttfb: float | None
    missing: tuple[str, ...]  # why it is not compared (empty: it is)

    @property
    def cost_per_1k(self) -> float | None:
        """US dollars per 1,000 of its requests."""
        if not self.priced or not self.requests:
            return None
        return self.cost_nanos * 1000 / self.requests / NANOS_PER_USD

    def view(self, total: int) -> dict[str, Any]:
        return {
            "name": self.deployment.name,
            "provider": self.deployment.provider.name,
            "requests": self.requests,
            "share": round(self.requests / total, 4) if total else 0.0,
            "cost_per_1k_usd": _usd(self.cost_per_1k),
            "priced": self.priced,
            "quality": None if self.quality is None else round(self.quality, 4),
            "scores": self.scores,
            "labels": self.labels,
            "p50_ttfb_ms": _ms(self.ttfb),
            "missing": list(self.missing),
        }


class _Compared(NamedTuple):
    """A deployment with enough data to compare."""

    row: _Row
    quality: float
    ttfb: float
    cost: float  # per 1,000 requests; math.inf when unpriced: never the cheapest


def _compared(row: _Row) -> _Compared | None:
    """The row with its data for comparing, or None when it lacks some."""
    if row.missing or row.quality is None or row.ttfb is None:
        return None
    cost = row.cost_per_1k
    return _Compared(row, row.quality, row.ttfb, math.inf if cost is None else cost)


def recommendations(
    table: ModelTable, feedback: Feedback, pricing: PricingTable, bounds: Bounds
) -> dict[str, Any]:
    """Every model group's recommendation (or why there is none), as plain JSON values."""
    return {
        "window_s": feedback.ledger.window,
        "bounds": {
            "quality_tolerance": bounds.quality_tolerance,
            "latency_tolerance": bounds.latency_tolerance,
            "min_count": bounds.min_count,
        },
        "groups": [_group(g, feedback, pricing, bounds) for g in table.groups],
    }


def _row(
    group: ModelGroup,
    deployment: Deployment,
    feedback: Feedback,
    pricing: PricingTable,
    min_count: int,
) -> _Row:
    traffic = feedback.ledger.traffic(group.name, deployment.name)
    scores = feedback.scores(deployment.name)
    count = len(scores) if scores is not None else 0
    ttfb = feedback.ledger.median_ttfb(deployment.name)
    model = deployment.model or group.name
    priced = pricing.price(deployment.provider.config.kind, model) is not None
    missing = []
    if count < min_count:
        missing.append(f"{count} of {min_count} scores")
    if traffic.requests < min_count:
        missing.append(f"{traffic.requests} of {min_count} requests in the window")
    if ttfb is None:
        missing.append("no time to first byte measured")
    return _Row(
        deployment,
        traffic.requests,
        traffic.cost_nanos,
        priced,
        scores.mean if scores else None,
        count,
        dict(scores.labels) if scores is not None else {},
        ttfb,
        tuple(missing),
    )


def _group(
    group: ModelGroup, feedback: Feedback, pricing: PricingTable, bounds: Bounds
) -> dict[str, Any]:
    rows = [_row(group, d, feedback, pricing, bounds.min_count) for d in group.deployments]
    total = sum(r.requests for r in rows)
    unpriced_traffic = any(r.requests and not r.priced for r in rows)
    mix = None
    if total and not unpriced_traffic:
        mix = sum(r.cost_nanos for r in rows) * 1000 / total / NANOS_PER_USD
    return {
        "group": group.name,
        "requests": total,
        "cost_per_1k_usd": _usd(mix),
        "deployments": [r.view(total) for r in rows],
        **_verdict(rows, total, mix, bounds),
    }


def _verdict(rows: list[_Row], total: int, mix: float | None, bounds: Bounds) -> dict[str, Any]:
    """The bests, the recommendation, and the reason when there is none (or no savings)."""
    verdict: dict[str, Any] = {
        "best_quality": None,
        "best_p50_ttfb_ms": None,
        "recommendation": None,
        "reason": None,
    }
    if len(rows) < 2:
        verdict["reason"] = "one deployment: nothing to choose between"
        return verdict
    compared = [c for r in rows if (c := _compared(r)) is not None]
    if len(compared) < 2:
        verdict["reason"] = (
            f"not enough data: {len(compared)} deployment(s) have {bounds.min_count} scores, "
            f"{bounds.min_count} requests in the window and a measured latency; comparing "
            "takes two"
        )
        return verdict
    best_quality = max(c.quality for c in compared)
    best_ttfb = min(c.ttfb for c in compared)
    verdict["best_quality"] = round(best_quality, 4)
    verdict["best_p50_ttfb_ms"] = _ms(best_ttfb)
    lowest_quality = best_quality - bounds.quality_tolerance - _EPSILON
    highest_ttfb = best_ttfb * (1 + bounds.latency_tolerance) + _EPSILON
    within = [
        c
        for c in compared
        if math.isfinite(c.cost) and c.quality >= lowest_quality and c.ttfb <= highest_ttfb
    ]
    if not within:
        verdict["reason"] = "no priced deployment within the bounds of the best"
        return verdict
    choice = min(within, key=lambda c: (c.cost, -c.quality, c.ttfb))  # ties: config order
    verdict["recommendation"] = {
        "deployment": choice.row.deployment.name,
        "cost_per_1k_usd": _usd(choice.cost),
        "quality": round(choice.quality, 4),
        "p50_ttfb_ms": _ms(choice.ttfb),
        "share_now": round(choice.row.requests / total, 4),
        "savings_per_1k_usd": None if mix is None else _usd(mix - choice.cost),
    }
    if mix is None:
        verdict["reason"] = "savings unknown: some of the traffic went to unpriced deployments"
    return verdict


def _usd(value: float | None) -> float | None:
    """Dollars per 1,000 requests to a micro-dollar (a nano-dollar per request)."""
    return None if value is None else round(value, 6)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class Recommender:
    """`recommendations` bound to what it reads; `bounds` are the configured ones, which one
    look may override (the admin route's query)."""

    __slots__ = ("_feedback", "_pricing", "_table", "bounds")

    def __init__(
        self, table: ModelTable, feedback: Feedback, pricing: PricingTable, bounds: Bounds
    ) -> None:
        self._table = table
        self._feedback = feedback
        self._pricing = pricing
        self.bounds = bounds

    def __call__(self, bounds: Bounds | None = None) -> dict[str, Any]:
        return recommendations(self._table, self._feedback, self._pricing, bounds or self.bounds)
