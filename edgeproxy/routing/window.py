"""A sum over the last few seconds, cheap enough to update on every upstream call."""

from __future__ import annotations

# A slot index older than any real clock reading, so the first call starts a fresh ring.
_NEVER = -(2**63)


class SlidingCounter:
    """The sum of the amounts added during the last `span` seconds, in `buckets` slots.

    Time is cut into slots of `span / buckets` seconds and the ring keeps the newest `buckets`
    of them, so the granularity is one slot: an amount counts for between `span - span/buckets`
    and `span` seconds after it was added. Slots that fall out of the window are zeroed lazily,
    when time reaches them again, so `add` is O(1) however long the counter sat idle. Times are
    monotonic seconds and are expected not to go backwards; a late amount still inside the
    window joins its own slot, one older than the window is dropped.
    """

    __slots__ = ("_amounts", "_head", "_size", "_width")

    def __init__(self, span: float, buckets: int = 10) -> None:
        if span <= 0 or buckets < 1:
            raise ValueError("span must be positive and buckets at least 1")
        self._width = span / buckets
        self._size = buckets
        self._amounts = [0.0] * buckets
        self._head = _NEVER  # the newest slot index the ring holds

    def add(self, now: float, amount: float = 1.0) -> None:
        slot = int(now // self._width)
        if slot > self._head:
            self._advance(slot)
        elif slot <= self._head - self._size:
            return
        self._amounts[slot % self._size] += amount

    def total(self, now: float) -> float:
        slot = int(now // self._width)
        if slot > self._head:
            self._advance(slot)
        return sum(self._amounts)

    def clear(self) -> None:
        self._amounts = [0.0] * self._size

    def _advance(self, slot: int) -> None:
        """Make `slot` the newest, zeroing the slots it reuses (all of them after a long gap)."""
        if slot - self._head >= self._size:
            self._amounts = [0.0] * self._size
        else:
            for stale in range(self._head + 1, slot + 1):
                self._amounts[stale % self._size] = 0.0
        self._head = slot
