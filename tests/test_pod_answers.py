"""The pod's answer from its workers' answers: what is summed, bounded, recomputed or kept."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.pod_answers import combine


@pytest.mark.parametrize(
    ("key", "values", "pod"),
    [
        ("requests", [3, 4], 7),
        ("cost_usd", [0.5, 0.25], 0.75),
        ("in_flight", [2, 0], 2),
        ("p99", [120.0, 80.5], 120.0),
        ("uptime_s", [10.0, 9.0], 10.0),
        ("max_entry_bytes", [4096, 4096], 4096),
        ("success_rate", [0.99, 0.5], 0.5),
        ("available", [False, True], True),
        ("breaker", ["closed", "open"], "open"),
        ("breaker", ["half_open", "closed"], "half_open"),
        ("model", ["gpt-4o", "gpt-4o"], "gpt-4o"),
        ("per_hour_usd", [None, 2.0], 2.0),
        ("p50", [None, None], None),
    ],
)
def test_a_field_of_the_pod_follows_its_rule(key: str, values: list[Any], pod: Any) -> None:
    assert combine(values, key) == pod


def test_a_hit_rate_is_recomputed_from_the_pod_s_hits_and_misses() -> None:
    workers = [{"hits": 9, "misses": 1, "hit_rate": 0.9}, {"hits": 0, "misses": 10, "hit_rate": 0}]
    assert combine(workers) == {"hits": 9, "misses": 11, "hit_rate": 9 / 20}


def test_named_rows_are_merged_by_name_in_first_seen_order() -> None:
    first = {"groups": [{"name": "a", "requests": 1}, {"name": "b", "requests": 2}]}
    second = {"groups": [{"name": "c", "requests": 5}, {"name": "a", "requests": 3}]}
    assert combine([first, second]) == {
        "groups": [
            {"name": "a", "requests": 4},
            {"name": "b", "requests": 2},
            {"name": "c", "requests": 5},
        ]
    }


def test_a_field_only_some_workers_report_is_combined_from_those() -> None:
    assert combine([{"removed": 2}, {"removed": 3, "note": "l2 down"}]) == {
        "removed": 5,
        "note": "l2 down",
    }
