"""What a request may do with the cache, from its headers and the operator's rules."""

from __future__ import annotations

from typing import Any

import pytest

from edgeproxy.cache.policy import BYPASS, Decision, decide

TTL = 3600.0
MAX_TTL = 86400.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, Decision(True, True, TTL)),
        ({"cache-control": "no-cache"}, Decision(False, True, TTL)),
        ({"cache-control": "no-store"}, Decision(True, False, TTL)),
        ({"cache-control": "No-Cache, no-store"}, Decision(False, False, TTL)),
        ({"cache-control": "max-age=60"}, Decision(True, True, 60.0, 60.0)),
        ({"cache-control": 's-maxage="30", max-age=60'}, Decision(True, True, 30.0, 30.0)),
        ({"cache-control": "max-age=0"}, Decision(True, False, 0.0, 0.0)),
        ({"cache-control": "max-age=abc, private"}, Decision(True, True, TTL)),
        ({"x-edgeproxy-cache-ttl": "120"}, Decision(True, True, 120.0)),
        (
            {"x-edgeproxy-cache-ttl": "120", "cache-control": "max-age=60"},
            Decision(True, True, 120.0, 60.0),
        ),
        ({"x-edgeproxy-cache-ttl": "-5"}, Decision(True, True, TTL)),
        ({"x-edgeproxy-cache-ttl": "0"}, Decision(True, False, 0.0)),
        ({"x-edgeproxy-cache-ttl": "31536000"}, Decision(True, True, MAX_TTL)),
        ({"x-edgeproxy-cache-ttl": "inf"}, Decision(True, True, MAX_TTL)),
        ({"x-edgeproxy-cache-ttl": "nan"}, Decision(True, True, TTL)),
        ({"cache-control": "max-age=" + "9" * 400}, Decision(True, True, MAX_TTL, float("inf"))),
    ],
)
def test_cache_control_and_the_ttl_header_decide_lookup_store_and_ttl(
    headers: dict[str, str], expected: Decision
) -> None:
    assert decide(headers, {}, TTL, None, MAX_TTL) == expected


def test_tags_are_read_cleanly_and_bounded() -> None:
    decision = decide(
        {
            "x-edgeproxy-cache-tags": "faq, billing,faq, bad tag!, "
            + ",".join(f"t{i}" for i in range(30))
        },
        {},
        TTL,
        None,
        MAX_TTL,
    )
    assert decision.tags[:2] == ("faq", "billing")
    assert "bad tag!" not in decision.tags and len(decision.tags) == 16


@pytest.mark.parametrize(
    ("payload", "limit", "bypassed"),
    [
        ({"temperature": 0.9}, 0.5, True),
        ({"temperature": 0.5}, 0.5, False),
        ({"temperature": 0}, 0.5, False),
        ({}, 0.5, False),
        ({"temperature": True}, 0.5, False),
        ({"temperature": 2.0}, None, False),
    ],
)
def test_the_opt_in_temperature_rule_bypasses_hot_samples(
    payload: dict[str, Any], limit: float | None, bypassed: bool
) -> None:
    assert (decide({}, payload, TTL, limit, MAX_TTL) == BYPASS) is bypassed
