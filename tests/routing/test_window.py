"""The sliding counter sums what was added during the last span, one slot at a time."""

from __future__ import annotations

import pytest

from edgeproxy.routing.window import SlidingCounter


def test_total_sums_the_amounts_added_inside_the_window() -> None:
    counter = SlidingCounter(span=10.0)
    counter.add(100.0)
    counter.add(103.5, 2.5)
    counter.add(109.9)
    assert counter.total(109.9) == 4.5


@pytest.mark.parametrize(
    ("read_at", "expected"),
    [
        (100.0, 1.0),  # the slot it was added in
        (109.99, 1.0),  # the last moment of the tenth slot
        (110.0, 0.0),  # its slot is reused: gone
    ],
)
def test_an_amount_expires_one_span_after_its_slot_began(read_at: float, expected: float) -> None:
    counter = SlidingCounter(span=10.0)
    counter.add(100.0)
    assert counter.total(read_at) == expected


def test_granularity_is_one_slot() -> None:
    counter = SlidingCounter(span=10.0, buckets=10)
    counter.add(100.9)  # late in the slot [100, 101)
    assert counter.total(109.5) == 1.0
    assert counter.total(110.0) == 0.0  # only 9.1 s after it was added


def test_old_slots_leave_while_newer_ones_stay() -> None:
    counter = SlidingCounter(span=10.0)
    for second in range(100, 110):
        counter.add(float(second))
    assert counter.total(109.0) == 10.0
    assert counter.total(113.0) == 6.0
    counter.add(113.0)
    assert counter.total(113.0) == 7.0


@pytest.mark.parametrize("jump", [10.0, 25.0, 1e6])
def test_a_jump_past_the_span_expires_everything(jump: float) -> None:
    counter = SlidingCounter(span=10.0)
    for second in range(100, 110):
        counter.add(float(second), 3.0)
    assert counter.total(109.0 + jump) == 0.0
    counter.add(109.0 + jump)
    assert counter.total(109.0 + jump) == 1.0


def test_a_reused_slot_starts_from_zero_when_added_to() -> None:
    counter = SlidingCounter(span=10.0)
    counter.add(100.0, 5.0)
    counter.add(110.0)  # same ring position, next lap: no read in between
    assert counter.total(110.0) == 1.0


def test_a_late_amount_inside_the_window_is_counted() -> None:
    counter = SlidingCounter(span=10.0)
    counter.add(105.0)
    counter.add(101.0)  # recorded by a caller that read the clock earlier
    assert counter.total(105.0) == 2.0
    assert counter.total(111.5) == 1.0


def test_a_late_amount_older_than_the_window_is_dropped() -> None:
    counter = SlidingCounter(span=10.0)
    counter.add(120.0)
    counter.add(105.0)  # its ring position now holds the slot of 115 s
    assert counter.total(120.0) == 1.0
    assert counter.total(125.5) == 1.0


def test_clear_forgets_everything() -> None:
    counter = SlidingCounter(span=10.0)
    counter.add(100.0, 4.0)
    counter.clear()
    assert counter.total(100.0) == 0.0
    counter.add(100.5)
    assert counter.total(100.5) == 1.0


def test_a_clock_starting_at_zero_works() -> None:
    counter = SlidingCounter(span=1.0, buckets=4)
    counter.add(0.0)
    counter.add(0.3)
    assert counter.total(0.3) == 2.0
    assert counter.total(1.0) == 1.0
    assert counter.total(1.25) == 0.0


@pytest.mark.parametrize(("span", "buckets"), [(0.0, 10), (-1.0, 10), (10.0, 0)])
def test_span_and_buckets_must_be_positive(span: float, buckets: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        SlidingCounter(span, buckets)
