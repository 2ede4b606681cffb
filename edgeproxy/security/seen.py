"""Texts a rule set already found clean, so a conversation's history is screened once.

A chat client resends every earlier turn with each request; screening them all again made a
conversation's cost grow with its length (5 ms for 3.5 KB of history with the injection
rules, bench/guard_stages.py). The verdict on a text depends only on the text and the rules,
so a clean one is remembered by its hash (SipHash with the process's secret key: a collision
cannot be aimed at) in a bounded table that forgets its oldest entries first. Flagged texts
are never remembered: they are screened, decided and audited every time.
"""

from __future__ import annotations


class CleanTexts:
    __slots__ = ("_hashes", "capacity")

    def __init__(self, capacity: int = 16384) -> None:
        self.capacity = capacity
        self._hashes: dict[int, None] = {}

    def __contains__(self, text: str) -> bool:
        return hash(text) in self._hashes

    def add(self, text: str) -> None:
        if not self.capacity:  # remembering nothing: every text screened every time
            return
        hashes = self._hashes
        if len(hashes) >= self.capacity:
            del hashes[next(iter(hashes))]
        hashes[hash(text)] = None

    def __len__(self) -> int:
        return len(self._hashes)
