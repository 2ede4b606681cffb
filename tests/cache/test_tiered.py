"""The tiered cache's L1 side: forms rendered for clients are held within L1's byte bound."""

from __future__ import annotations

import tracemalloc

from edgeproxy.background import Background
from edgeproxy.cache.answer import Shape, StoredAnswer
from edgeproxy.cache.memory import MemoryCache
from edgeproxy.cache.tiered import TieredCache
from edgeproxy.dialects.neutral import Start, Stop, TextDelta, Usage, UsageReport
from edgeproxy.operations import Operation

STREAM: Shape = (Operation.CHAT, True, True)
WHOLE: Shape = (Operation.MESSAGES, False, False)
NOW = 100.0


def answer(words: int = 50, tag: str = "") -> StoredAnswer:
    deltas = (TextDelta(f" word{i}{tag}") for i in range(words))
    events = (Start("id", "gpt-4o"), *deltas, Stop("stop"), UsageReport(Usage(5, words)))
    return StoredAnswer.of_events(events, 1.0)


def tiered(max_bytes: int, max_entry_bytes: int | None = None) -> TieredCache:
    memory: MemoryCache[StoredAnswer] = MemoryCache(100, max_bytes, max_entry_bytes)
    return TieredCache(memory, None, Background(), lambda: NOW, lambda: 1000.0)


def test_the_l1_bytes_are_close_to_the_memory_its_entries_really_take() -> None:
    cache = tiered(10**8)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(300):
            key, stored = f"{n:064x}", answer(words=40, tag=f"-{n}")
            cache.store(key, "ns", stored, ttl=60)
            cache.render(key, stored, STREAM if n % 2 else WHOLE)
        del stored
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 0.75 * held < cache.memory.bytes < 1.33 * held


def test_a_rendered_form_is_kept_and_counted_in_the_l1_bytes() -> None:
    cache, stored = tiered(10**6), answer()
    cache.store("k", "ns", stored, ttl=60)
    first = cache.render("k", stored, STREAM)
    assert cache.render("k", stored, STREAM) is first
    cache.render("k", stored, WHOLE)
    assert cache.memory.bytes == stored.size > len(first)


def test_forms_that_overflow_the_bound_evict_the_least_recently_used() -> None:
    one, other = answer(), answer()
    form = len(answer().render(*STREAM))  # room for one answer with its form, not for two
    cache = tiered(one.size + form + other.size // 2)
    cache.store("old", "ns", other, ttl=60)
    cache.store("k", "ns", one, ttl=60)
    cache.render("k", one, STREAM)
    assert cache.memory.bytes == one.size <= cache.memory.max_bytes
    assert cache.memory.get("old", NOW) is None and cache.memory.evictions == 1


def test_a_form_that_does_not_fit_the_entry_limit_is_rendered_but_not_kept() -> None:
    stored = answer()
    cache = tiered(10**6, max_entry_bytes=stored.size + 100)
    cache.store("k", "ns", stored, ttl=60)
    form = cache.render("k", stored, STREAM)
    assert form.startswith(b"data: ") and stored.rendered == {}
    assert cache.memory.bytes == stored.size and cache.memory.get("k", NOW) is not None


def test_an_answer_l1_does_not_hold_keeps_no_form() -> None:
    cache, stored = tiered(10**6), answer()
    cache.render("k", stored, WHOLE)
    assert stored.rendered == {} and cache.memory.bytes == 0
