"""The L1 cache: LRU under an entry bound and a byte bound, a time to live, tags, namespaces."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from edgeproxy.cache.memory import Hit, MemoryCache

T0 = 1000.0


def cache(
    max_entries: int = 100, max_bytes: int = 10_000, max_entry_bytes: int | None = None
) -> MemoryCache[str]:
    return MemoryCache(max_entries, max_bytes, max_entry_bytes)


def put(
    c: MemoryCache[str],
    key: str,
    size: int = 10,
    *,
    ttl: float = 60.0,
    now: float = T0,
    namespace: str = "ns",
    tags: tuple[str, ...] = (),
    value: str | None = None,
) -> bool:
    return c.put(
        key, value or f"value of {key}", size, ttl=ttl, now=now, namespace=namespace, tags=tags
    )


def held(c: MemoryCache[str], keys: str, now: float = T0) -> str:
    """Which of the one-letter `keys` are still answered (a hit also refreshes them)."""
    return "".join(k for k in keys if c.get(k, now) is not None)


def assert_index_matches(c: MemoryCache[str], tag_refs: int) -> None:
    """The namespace index holds each entry once, the tag index `tag_refs` keys in all."""
    assert c._index_refs() == (c.entries, tag_refs)


# Hits and misses


def test_a_stored_value_is_a_hit_with_its_age_and_expiry() -> None:
    c = cache()
    assert put(c, "a", ttl=30.0, now=T0, value="answer")
    assert c.get("a", T0 + 5.0) == Hit("answer", stored_at=T0, expires_at=T0 + 30.0)


def test_an_unknown_key_is_a_miss() -> None:
    c = cache()
    put(c, "a")
    assert c.get("b", T0) is None
    assert (c.hits, c.misses) == (0, 1)


@pytest.mark.parametrize(
    ("read_at", "fresh"),
    [
        (T0, True),
        (T0 + 9.999, True),
        (T0 + 10.0, False),  # expires_at itself is already too late
        (T0 + 1e6, False),
    ],
)
def test_an_entry_is_fresh_until_its_ttl_has_passed(read_at: float, fresh: bool) -> None:
    c = cache()
    put(c, "a", ttl=10.0, now=T0)
    assert (c.get("a", read_at) is not None) is fresh


def test_an_expired_entry_is_removed_when_read_and_counted_as_an_expired_miss() -> None:
    c = cache()
    put(c, "a", size=30, ttl=10.0, now=T0, tags=("t",))
    assert c.get("a", T0 + 10.0) is None
    assert (c.entries, c.bytes) == (0, 0)
    assert (c.hits, c.misses, c.expirations, c.evictions) == (0, 1, 1, 0)
    assert c.get("a", T0 + 10.0) is None  # gone: a plain miss now
    assert (c.misses, c.expirations) == (2, 1)
    assert_index_matches(c, tag_refs=0)


# LRU order under both bounds


@pytest.mark.parametrize(
    ("touched", "left"),
    [
        ("", "bcd"),  # the oldest goes
        ("a", "acd"),  # a hit protects a: the next oldest goes
        ("ab", "abd"),
        ("ca", "acd"),
    ],
)
def test_the_least_recently_used_entry_leaves_when_the_entry_bound_is_reached(
    touched: str, left: str
) -> None:
    c = cache(max_entries=3)
    for key in "abc":
        put(c, key)
    for key in touched:
        assert c.get(key, T0) is not None
    put(c, "d")
    assert c.entries == 3
    assert held(c, "abcd") == left
    assert c.evictions == 1


@pytest.mark.parametrize(
    ("touched", "new_size", "left"),
    [
        ("", 20, "bcd"),  # 90 + 20 > 100: one entry makes room
        ("", 50, "cd"),  # two have to go
        ("a", 20, "acd"),  # a was read: b is the least recently used
        ("a", 70, "ad"),
        ("", 100, "d"),  # a value as large as the whole cache empties it
    ],
)
def test_least_recently_used_entries_leave_until_the_bytes_fit(
    touched: str, new_size: int, left: str
) -> None:
    c = cache(max_bytes=100)
    for key in "abc":
        put(c, key, size=30)
    for key in touched:
        c.get(key, T0)
    assert put(c, "d", size=new_size)
    assert held(c, "abcd") == left
    assert c.bytes == 30 * (len(left) - 1) + new_size
    assert c.evictions == 4 - len(left)


def test_an_entry_just_within_the_byte_bound_evicts_nothing() -> None:
    c = cache(max_bytes=100)
    put(c, "a", size=60)
    put(c, "b", size=40)
    assert (c.bytes, c.evictions) == (100, 0)
    assert held(c, "ab") == "ab"


def test_expired_entries_met_while_evicting_count_as_expirations_not_evictions() -> None:
    c = cache(max_entries=2)
    put(c, "a", ttl=5.0, now=T0)
    put(c, "b", ttl=60.0, now=T0)
    put(c, "c", now=T0 + 10.0)  # a is least recently used and already expired
    put(c, "d", now=T0 + 10.0)  # b is least recently used and fresh
    assert (c.expirations, c.evictions) == (1, 1)
    assert held(c, "abcd", T0 + 10.0) == "cd"


def test_zero_size_values_are_bounded_by_the_entry_count() -> None:
    c = cache(max_entries=2, max_bytes=1)
    for key in "abc":
        assert put(c, key, size=0)
    assert held(c, "abc") == "bc"


# A value that grows


def test_a_value_that_grows_is_accounted_and_evicts_the_least_recently_used() -> None:
    c = cache(max_bytes=100)
    for key in "abc":
        put(c, key, size=30)
    held(c, "b")  # a is now the least recently used
    hit = c.get("c", T0)
    assert hit is not None
    assert c.resize("c", hit.value, 50, now=T0)
    assert (c.bytes, c.evictions) == (80, 1)
    assert held(c, "abc") == "bc"


def test_a_value_that_shrinks_frees_bytes() -> None:
    c = cache()
    put(c, "a", size=60, value="v")
    assert c.resize("a", "v", 20, now=T0)
    assert c.bytes == 20


@pytest.mark.parametrize(
    ("key", "value", "size"),
    [("a", "other value", 20), ("missing", "v", 20), ("a", "v", 51)],
    ids=["another value", "no entry", "beyond the entry limit"],
)
def test_a_resize_that_cannot_hold_changes_nothing(key: str, value: str, size: int) -> None:
    c = cache(max_bytes=100, max_entry_bytes=50)
    put(c, "a", size=10, value="v")
    put(c, "b", size=10)
    assert not c.resize(key, value, size, now=T0)
    assert (c.bytes, c.entries, c.evictions) == (20, 2, 0)


# Replacing a key


def test_replacing_a_key_accounts_only_the_new_size_and_evicts_nothing() -> None:
    c = cache(max_entries=2, max_bytes=100)
    put(c, "a", size=60)
    put(c, "b", size=30)
    assert put(c, "a", size=70, now=T0 + 1.0, value="newer")
    assert (c.entries, c.bytes, c.evictions) == (2, 100, 0)
    hit = c.get("a", T0 + 1.0)
    assert hit is not None
    assert (hit.value, hit.stored_at) == ("newer", T0 + 1.0)


def test_a_replaced_key_becomes_the_most_recently_used() -> None:
    c = cache(max_entries=2)
    put(c, "a")
    put(c, "b")
    put(c, "a")
    put(c, "c")
    assert held(c, "abc") == "ac"


def test_replacing_a_key_swaps_its_tags_and_namespace() -> None:
    c = cache()
    put(c, "a", namespace="one", tags=("old", "both"))
    put(c, "a", namespace="two", tags=("new", "both"))
    assert_index_matches(c, tag_refs=2)
    assert c.delete_tag("one", "old") == 0
    assert c.delete_tag("one", "both") == 0
    assert c.clear_namespace("one") == 0
    assert c.delete_tag("two", "new") == 1
    assert c.entries == 0
    assert c.snapshot()["tags"] == 0


# Refusals


@pytest.mark.parametrize(
    ("max_bytes", "max_entry_bytes", "size", "stored"),
    [
        (100, None, 100, True),  # the whole cache is the default limit
        (100, None, 101, False),
        (100, 40, 40, True),
        (100, 40, 41, False),
        (100, 500, 101, False),  # a per-entry limit above the total does not raise it
    ],
)
def test_a_value_larger_than_the_entry_limit_is_refused_and_counted(
    max_bytes: int, max_entry_bytes: int | None, size: int, stored: bool
) -> None:
    c = cache(max_bytes=max_bytes, max_entry_bytes=max_entry_bytes)
    assert put(c, "a", size=size) is stored
    assert c.entries == int(stored)
    assert c.rejected == int(not stored)


def test_a_refused_value_leaves_the_cache_as_it_was() -> None:
    c = cache(max_entries=2, max_bytes=100)
    put(c, "a", size=50, value="kept")
    put(c, "b", size=50)
    assert not put(c, "a", size=101, value="too large")
    assert (c.entries, c.bytes, c.evictions) == (2, 100, 0)
    hit = c.get("a", T0)
    assert hit is not None
    assert hit.value == "kept"


@pytest.mark.parametrize("ttl", [0.0, -1.0])
def test_a_value_that_would_be_born_expired_is_not_stored(ttl: float) -> None:
    c = cache()
    assert not put(c, "a", ttl=ttl)
    assert (c.entries, c.rejected) == (0, 0)


def test_a_negative_size_is_an_error() -> None:
    with pytest.raises(ValueError, match="negative"):
        put(cache(), "a", size=-1)


@pytest.mark.parametrize(
    ("max_entries", "max_bytes", "max_entry_bytes"),
    [(0, 100, None), (10, 0, None), (10, 100, 0), (-1, 100, 10)],
)
def test_bounds_must_be_positive(
    max_entries: int, max_bytes: int, max_entry_bytes: int | None
) -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryCache[str](max_entries, max_bytes, max_entry_bytes)


# Deleting by key, tag, namespace


def test_delete_removes_one_key_and_frees_its_bytes() -> None:
    c = cache()
    put(c, "a", size=10, tags=("t",))
    put(c, "b", size=20, tags=("t",))
    assert c.delete("a")
    assert not c.delete("a")
    assert (c.entries, c.bytes) == (1, 20)
    assert held(c, "ab") == "b"
    assert_index_matches(c, tag_refs=1)


def test_delete_tag_removes_only_that_tag_in_that_namespace() -> None:
    c = cache()
    put(c, "a", namespace="one", tags=("gpt", "team-x"))
    put(c, "b", namespace="one", tags=("gpt",))
    put(c, "c", namespace="one", tags=("claude",))
    put(c, "d", namespace="two", tags=("gpt",))
    put(c, "e", namespace="one")
    assert c.delete_tag("one", "gpt") == 2
    assert held(c, "abcde") == "cde"
    assert c.delete_tag("one", "gpt") == 0
    assert c.delete_tag("one", "team-x") == 0  # left with a, nothing stale behind
    assert c.delete_tag("nowhere", "gpt") == 0
    assert c.snapshot()["tags"] == 2  # (one, claude) and (two, gpt)
    assert_index_matches(c, tag_refs=2)


def test_clear_namespace_removes_only_that_namespace() -> None:
    c = cache()
    put(c, "a", size=10, namespace="one", tags=("t",))
    put(c, "b", size=10, namespace="one")
    put(c, "c", size=25, namespace="two", tags=("t",))
    assert c.clear_namespace("one") == 2
    assert c.clear_namespace("one") == 0
    assert held(c, "abc") == "c"
    assert c.bytes == 25
    assert c.snapshot()["namespaces"] == 1
    assert_index_matches(c, tag_refs=1)
    assert c.delete_tag("two", "t") == 1


def test_clear_removes_everything_and_keeps_the_counters() -> None:
    c = cache()
    for key in "abc":
        put(c, key, tags=("t",))
    c.get("a", T0)
    assert c.clear() == 3
    assert (c.entries, c.bytes, c.hits) == (0, 0, 1)
    assert c.delete_tag("ns", "t") == 0
    assert_index_matches(c, tag_refs=0)


@pytest.mark.parametrize("how", ["evicted", "expired on read", "replaced untagged"])
def test_no_index_entry_outlives_its_cache_entry(how: str) -> None:
    c = cache(max_entries=4)
    for key in "abcd":
        put(c, key, ttl=10.0, namespace=f"ns-{key}", tags=(f"tag-{key}", "shared"))
    later = T0 + 20.0
    if how == "evicted":
        for key in "wxyz":
            put(c, key, now=later)
    elif how == "expired on read":
        assert held(c, "abcd", later) == ""
    else:
        for key in "abcd":
            put(c, key, namespace="plain", now=later)
    for key in "abcd":
        assert c.delete_tag(f"ns-{key}", "shared") == 0
    assert c.snapshot()["tags"] == 0
    assert_index_matches(c, tag_refs=0)
    assert c.entries == (0 if how == "expired on read" else 4)


# Counters and snapshot


def test_snapshot_reports_sizes_bounds_and_counters() -> None:
    c = cache(max_entries=2, max_bytes=100, max_entry_bytes=50)
    put(c, "a", size=20, ttl=5.0, namespace="one", tags=("x",))
    put(c, "b", size=30, namespace="two", tags=("x", "y"))
    c.get("b", T0)  # hit
    c.get("zz", T0)  # miss
    put(c, "c", size=40, now=T0 + 1.0)  # evicts a, still fresh
    put(c, "d", size=60)  # refused
    c.get("b", T0 + 60.0)  # expired miss
    assert c.snapshot() == {
        "entries": 1,
        "bytes": 40,
        "max_entries": 2,
        "max_bytes": 100,
        "max_entry_bytes": 50,
        "namespaces": 1,
        "tags": 0,
        "hits": 1,
        "misses": 2,
        "expirations": 1,
        "evictions": 1,
        "rejected": 1,
    }


# Against a reference model


@dataclass
class _Stored:
    key: str
    value: str
    size: int
    stored_at: float
    expires_at: float
    namespace: str
    tags: frozenset[str]


class _Model:
    """The same contract, written plainly: a list in least-recently-used order."""

    def __init__(self, max_entries: int, max_bytes: int, max_entry_bytes: int | None) -> None:
        self.max_entries, self.max_bytes, self.max_entry_bytes = (
            max_entries,
            max_bytes,
            max_entry_bytes,
        )
        self.items: list[_Stored] = []
        self.counts = {"hits": 0, "misses": 0, "expirations": 0, "evictions": 0, "rejected": 0}

    def _find(self, key: str) -> _Stored | None:
        return next((s for s in self.items if s.key == key), None)

    def get(self, key: str, now: float) -> _Stored | None:
        s = self._find(key)
        if s is not None and now < s.expires_at:
            self.items.remove(s)
            self.items.append(s)
            self.counts["hits"] += 1
            return s
        self.counts["misses"] += 1
        if s is not None:
            self.items.remove(s)
            self.counts["expirations"] += 1
        return None

    def put(self, new: _Stored) -> bool:
        if new.size > min(self.max_bytes, self.max_entry_bytes or self.max_bytes):
            self.counts["rejected"] += 1
            return False
        self.items = [s for s in self.items if s.key != new.key]
        while len(self.items) + 1 > self.max_entries or (
            sum(s.size for s in self.items) + new.size > self.max_bytes
        ):
            old = self.items.pop(0)
            self.counts["evictions" if new.stored_at < old.expires_at else "expirations"] += 1
        self.items.append(new)
        return True


@pytest.mark.parametrize("seed", range(30))
def test_the_cache_behaves_like_a_plain_reference_model(seed: int) -> None:
    rng = random.Random(seed)
    bounds = (rng.randint(1, 8), rng.randint(20, 200), rng.choice([25, 60, None]))
    c: MemoryCache[str] = MemoryCache(*bounds)
    model = _Model(*bounds)
    keys = [f"k{i}" for i in range(10)]
    namespaces, tags = ("one", "two"), ("t1", "t2", "t3")
    now = T0
    for step in range(400):
        op = rng.random()
        if op < 0.40:
            new = _Stored(
                key=rng.choice(keys),
                value=f"v{step}",
                size=rng.randint(0, 30) if rng.random() < 0.9 else rng.randint(31, 250),
                stored_at=now,
                expires_at=now + rng.choice([1.0, 5.0, 30.0]),
                namespace=rng.choice(namespaces),
                tags=frozenset(rng.sample(tags, rng.randint(0, 2))),
            )
            ttl = new.expires_at - now
            stored = c.put(
                new.key,
                new.value,
                new.size,
                ttl=ttl,
                now=now,
                namespace=new.namespace,
                tags=new.tags,
            )
            assert stored is model.put(new)
        elif op < 0.75:
            key = rng.choice(keys)
            hit, expected = c.get(key, now), model.get(key, now)
            if expected is None:
                assert hit is None
            else:
                assert hit == Hit(expected.value, expected.stored_at, expected.expires_at)
        elif op < 0.80:
            key = rng.choice(keys)
            assert c.delete(key) is (model._find(key) is not None)
            model.items = [s for s in model.items if s.key != key]
        elif op < 0.84:
            ns, tag = rng.choice(namespaces), rng.choice(tags)
            gone = [s for s in model.items if s.namespace == ns and tag in s.tags]
            model.items = [s for s in model.items if s not in gone]
            assert c.delete_tag(ns, tag) == len(gone)
        elif op < 0.86:
            ns = rng.choice(namespaces)
            gone = [s for s in model.items if s.namespace == ns]
            model.items = [s for s in model.items if s not in gone]
            assert c.clear_namespace(ns) == len(gone)
        else:
            now += rng.choice([0.5, 1.0, 4.0])

        assert c.entries == len(model.items) <= bounds[0]
        assert c.bytes == sum(s.size for s in model.items) <= bounds[1]
        assert {k: getattr(c, k) for k in model.counts} == model.counts
        assert c.snapshot()["tags"] == len({(s.namespace, t) for s in model.items for t in s.tags})
        assert_index_matches(c, tag_refs=sum(len(s.tags) for s in model.items))
