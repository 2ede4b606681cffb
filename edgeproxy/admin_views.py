"""What the admin listener shows that is built from one configuration's state: the status
page's figures and the routing recommendations. A configuration reload builds them again
for the new state (`follow`); the admin routes ask for them per request."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgeproxy.telemetry.stats import LiveStats

if TYPE_CHECKING:
    from edgeproxy.state import ProxyState
    from edgeproxy.telemetry.recommend import Recommender


def _open_incidents(state: ProxyState) -> Callable[[], list[dict[str, Any]]] | None:
    watch = state.incidents
    if watch is None:
        return None
    manager = watch.manager
    return lambda: [incident.view() for incident in manager.open_incidents]


def _recommender(state: ProxyState) -> Recommender | None:
    feedback = state.feedback
    if feedback is None:
        return None
    from edgeproxy.telemetry.recommend import Bounds, Recommender

    pricing = state.config.security.pricing.table
    return Recommender(state.table, feedback, pricing, Bounds.of(feedback.settings))


class AdminViews:
    """The status page's figures and the recommendations of the state serving now."""

    __slots__ = ("recommender", "stats")

    def __init__(self, state: ProxyState) -> None:
        self.follow(state)

    def follow(self, state: ProxyState) -> None:
        """Build them for `state`, which a reload has just swapped in."""
        self.stats = LiveStats(
            state.requests, state.table, state.pipeline.clock, _open_incidents(state)
        )
        self.recommender = _recommender(state)
