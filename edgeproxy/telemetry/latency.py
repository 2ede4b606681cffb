"""The proxy's real histograms: latencies that no counter kept anyway can give.

A leaf module, so the layers that observe them import it without importing the collector
(telemetry/metrics.py) that reads the whole proxy's state.
"""

from __future__ import annotations

from prometheus_client import Histogram

# L2 round trips: a few hundred microseconds on a healthy network, up to the Redis timeout.
L2_LOOKUP_SECONDS = Histogram(
    "edgeproxy_cache_l2_lookup_seconds",
    "Time to look an entry up in Redis (L2), hit or miss.",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
    registry=None,
)
# Semantic lookups: the question embedded (or its vector found in the embeddings cache) and
# its partition searched; a few ms with the local model, cut at the configured budget.
SEMANTIC_LOOKUP_SECONDS = Histogram(
    "edgeproxy_cache_semantic_lookup_seconds",
    "Time of a semantic lookup (embedding and search), hit or not; cut at cache.semantic.budget.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=None,
)
