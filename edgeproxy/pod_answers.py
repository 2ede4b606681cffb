"""One answer for the pod from its workers' JSON answers (edgeproxy.pod_admin).

Each worker of a pod counts for itself; the pod's figure is what an operator would compute by
hand from all of them:
- a count (requests, hits, entries, bytes, dollars, in flight) is summed;
- a bound on one worker (`max_entry_bytes`), an age (`uptime_s`, `window_s`), a latency
  (`p50`, `p99`, a moving average of time to first byte) is the largest: the pod's p99 lies
  between its workers' p99s, so the largest is a bound that never flatters;
- a success rate is the smallest, a hit rate is recomputed from the summed hits and misses;
- a breaker is the worst worker's (`open` over `half_open` over `closed`), `available` is any
  worker's;
- lists of named rows (groups, teams, deployments) are merged row by row on `name`;
- anything else (names, models, settings) is the first worker's: the workers share one
  configuration.
Pure: no I/O, so the rules are tested on plain values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_LARGEST = frozenset(
    {"uptime_s", "window_s", "p50", "p99", "ewma_ttfb_ms", "max_entry_bytes", "version"}
)
_SMALLEST = frozenset({"success_rate"})
_NUMBER_RULES: dict[str, Callable[[list[Any]], Any]] = {
    **dict.fromkeys(_LARGEST, max),
    **dict.fromkeys(_SMALLEST, min),
}
_BREAKER_RANK = {"open": 2, "half_open": 1, "closed": 0}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _named_rows(values: list[Any]) -> bool:
    return all(
        isinstance(rows, list) and all(isinstance(r, dict) and "name" in r for r in rows)
        for rows in values
    ) and any(values)


def _merge_rows(values: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for rows in values:
        for row in rows:
            by_name.setdefault(row["name"], []).append(row)
    return [combine(rows) for rows in by_name.values()]


def _combine_dicts(values: list[dict[str, Any]]) -> dict[str, Any]:
    keys = list(dict.fromkeys(key for value in values for key in value))
    merged = {key: combine([v[key] for v in values if key in v], key) for key in keys}
    if "hit_rate" in merged and _number(merged.get("hits")) and _number(merged.get("misses")):
        looked = merged["hits"] + merged["misses"]
        merged["hit_rate"] = merged["hits"] / looked if looked else None
    return merged


def combine(values: list[Any], key: str = "") -> Any:
    """The pod's value of `key` from each worker's (see the module docstring)."""
    present = [value for value in values if value is not None]
    if not present:
        return None
    if all(isinstance(value, dict) for value in present):
        return _combine_dicts(present)
    if _named_rows(present):
        return _merge_rows(present)
    return _scalar(present, key)


def _scalar(present: list[Any], key: str) -> Any:
    if all(_number(value) for value in present):
        return _NUMBER_RULES.get(key, sum)(present)
    if all(isinstance(value, bool) for value in present):
        return any(present)
    if key == "breaker" and all(value in _BREAKER_RANK for value in present):
        return max(present, key=_BREAKER_RANK.__getitem__)
    return present[0]
