"""The ledger of served answers: bounded by age and count, and the traffic it sums."""

from __future__ import annotations

import pytest

from edgeproxy.telemetry.served import LATENCY_SAMPLES, ServedLedger
from tests.support.clock import ManualClock
from tests.support.records import answered

WINDOW = 3600.0


def ledger(max_ids: int = 100, clock: ManualClock | None = None) -> ServedLedger:
    return ServedLedger(WINDOW, max_ids, clock or ManualClock())


def test_an_answer_is_remembered_until_the_window_has_passed() -> None:
    clock = ManualClock()
    served = ledger(clock=clock)
    served.served(answered("r1", cost_usd=0.25, key_id="web"))
    clock.advance(WINDOW - 0.001)
    found = served.find("r1")
    assert found is not None
    assert (found.group, found.deployment, found.key_id, found.cost_nanos) == (
        "g",
        "a",
        "web",
        250_000_000,
    )
    clock.advance(0.001)
    assert served.find("r1") is None
    assert len(served) == 0


def test_past_max_ids_the_oldest_ids_are_forgotten_first() -> None:
    served = ledger(max_ids=3)
    for n in range(5):
        served.served(answered(f"r{n}"))
    assert len(served) == 3
    assert [served.find(f"r{n}") is not None for n in range(5)] == [False, False, True, True, True]


@pytest.mark.parametrize("status", [400, 404, 429, 500, 503])
def test_a_request_without_an_answer_is_not_remembered(status: int) -> None:
    served = ledger()
    served.served(answered("r1", status=status))
    assert served.find("r1") is None
    assert served.traffic("g", "a").requests == 0


def test_a_cache_answer_is_remembered_but_is_no_deployment_s_traffic() -> None:
    served = ledger()
    served.served(answered("r1", deployment=None))
    found = served.find("r1")
    assert found is not None and found.deployment is None
    assert served.median_ttfb("a") is None


def test_traffic_sums_exactly_the_ids_still_held() -> None:
    clock = ManualClock()
    served = ledger(max_ids=3, clock=clock)
    served.served(answered("r1", cost_usd=0.001))
    clock.advance(10)
    served.served(answered("r2", cost_usd=0.002))
    served.served(answered("r3", "b", cost_usd=0.004))
    first = served.traffic("g", "a")
    assert (first.requests, first.cost_nanos) == (2, 3_000_000)
    served.served(answered("r4", cost_usd=0.008))  # r1 leaves: over max_ids
    after_count = served.traffic("g", "a")
    assert (after_count.requests, after_count.cost_nanos) == (2, 10_000_000)
    clock.advance(WINDOW)  # r2, r3 and r4 leave: past the window
    assert served.traffic("g", "a").requests == 0
    assert served.traffic("g", "b").cost_nanos == 0


def test_traffic_is_kept_per_group_and_deployment() -> None:
    served = ledger()
    served.served(answered("r1", "a", group="g1", cost_usd=0.001))
    served.served(answered("r2", "a", group="g2", cost_usd=0.002))
    assert served.traffic("g1", "a").cost_nanos == 1_000_000
    assert served.traffic("g2", "a").cost_nanos == 2_000_000
    assert served.traffic("g3", "a").requests == 0


def test_an_id_served_again_replaces_its_earlier_answer() -> None:
    served = ledger()
    served.served(answered("same", "a", cost_usd=0.001))
    served.served(answered("other", "a"))
    served.served(answered("same", "b", cost_usd=0.002))
    found = served.find("same")
    assert found is not None and found.deployment == "b"
    assert (served.traffic("g", "a").requests, served.traffic("g", "b").requests) == (1, 1)
    assert served.traffic("g", "a").cost_nanos == 0
    assert len(served) == 2


def test_the_median_time_to_first_byte_covers_the_latest_answers() -> None:
    served = ledger(max_ids=10)
    for n, ttfb in enumerate([0.3, 0.1, 0.2]):
        served.served(answered(f"r{n}", ttfb=ttfb))
    assert served.median_ttfb("a") == 0.2
    for n in range(LATENCY_SAMPLES):
        served.served(answered(f"s{n}", ttfb=1.0))
    assert served.median_ttfb("a") == 1.0
    assert served.median_ttfb("unknown") is None


@pytest.mark.parametrize(("window", "max_ids"), [(0.0, 10), (-1.0, 10), (60.0, 0)])
def test_a_ledger_needs_a_window_and_room(window: float, max_ids: int) -> None:
    with pytest.raises(ValueError, match="window must be positive"):
        ServedLedger(window, max_ids)
