"""The proxy's real counters: events counted where they happen, by objects a config reload
may replace, so the count lives here and never goes back.

A leaf module, like `latency`, so the layers that count import it without importing the
collector (telemetry/metrics.py) that reads the whole proxy's state.
"""

from __future__ import annotations

from prometheus_client import Counter

# Redis calls of the shared rate limiter that failed; the configured failure policy answered.
RATELIMIT_BACKEND_ERRORS = Counter(
    "edgeproxy_ratelimit_backend_errors",
    "Rate-limit Redis calls that failed (error: timeout when no answer came within the "
    "limiter's timeout, else error); the configured failure policy answered instead.",
    ["error"],
    registry=None,
)
for _error in ("timeout", "error"):
    RATELIMIT_BACKEND_ERRORS.labels(_error)  # exported as 0 before the first failure
