"""The L1 cache: an in-process LRU with a time to live, bounded by entries and by bytes.

Pure: the caller passes `now` (monotonic seconds) to every call and states each value's size,
so the cache holds values of any type and is tested without a clock or a sleep.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")
K = TypeVar("K")

# What the hot path does not need, kept apart from it: size, namespace, tags.
_Meta = tuple[int, str, frozenset[str]]


@dataclass(frozen=True, slots=True)
class Hit(Generic[V]):
    """A stored value with the moment it was put (its age is `now - stored_at`)."""

    value: V
    stored_at: float
    expires_at: float


class MemoryCache(Generic[V]):
    """Least recently used entries leave first once `max_entries` or `max_bytes` would be passed.

    An entry is fresh while `now < stored_at + ttl`; from that instant on it is a miss, removed
    when met (by `get` or by eviction) and counted as an expiration, never
    as an eviction. Eviction is purely least-recently-used: an expired entry holds its bytes
    until it is met. A refused `put` (too large, or a ttl that is not positive) leaves the cache
    as it was. Entries are found by key alone; the namespace and tags given to `put` only say
    which entries `clear_namespace` and `delete_tag` remove. The counters only grow (metrics).
    Not thread-safe: the event loop that serves requests owns it.
    """

    __slots__ = (
        "_bytes",
        "_entries",
        "_meta",
        "_namespaces",
        "_tagged",
        "evictions",
        "expirations",
        "hits",
        "max_bytes",
        "max_entries",
        "max_entry_bytes",
        "misses",
        "rejected",
    )

    def __init__(
        self, max_entries: int, max_bytes: int, max_entry_bytes: int | None = None
    ) -> None:
        if min(max_entries, max_bytes, 1 if max_entry_bytes is None else max_entry_bytes) < 1:
            raise ValueError("max_entries, max_bytes and max_entry_bytes must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_entry_bytes = min(max_bytes, max_entry_bytes or max_bytes)
        self._entries: OrderedDict[str, Hit[V]] = OrderedDict()  # least recently used first
        self._meta: dict[str, _Meta] = {}
        self._namespaces: dict[str, set[str]] = {}  # namespace -> keys
        self._tagged: dict[tuple[str, str], set[str]] = {}  # (namespace, tag) -> keys
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self.expirations = 0
        self.evictions = 0
        self.rejected = 0

    @property
    def entries(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """The sum of the sizes stated for the entries held (expired ones included)."""
        return self._bytes

    def get(self, key: str, now: float) -> Hit[V] | None:
        """The fresh entry under `key`, now the most recently used; None on a miss."""
        hit = self._entries.get(key)
        if hit is not None and now < hit.expires_at:
            self._entries.move_to_end(key)
            self.hits += 1
            return hit
        self.misses += 1
        if hit is not None:
            self._remove(key)
            self.expirations += 1
        return None

    def put(
        self,
        key: str,
        value: V,
        size: int,
        *,
        ttl: float,
        now: float,
        namespace: str,
        tags: Iterable[str] = (),
    ) -> bool:
        """Store `value` (replacing what `key` held), evicting the least recently used entries
        until both bounds hold; False, with nothing changed, if it is refused."""
        if size < 0:
            raise ValueError(f"size must not be negative, got {size}")
        if size > self.max_entry_bytes:
            self.rejected += 1
            return False
        if ttl <= 0:
            return False
        if key in self._entries:
            self._remove(key)
        entries = self._entries
        while entries and (len(entries) >= self.max_entries or self._bytes + size > self.max_bytes):
            self._evict_oldest(now)
        tagset = frozenset(tags)
        entries[key] = Hit(value, now, now + ttl)
        self._meta[key] = (size, namespace, tagset)
        self._bytes += size
        self._namespaces.setdefault(namespace, set()).add(key)
        for tag in tagset:
            self._tagged.setdefault((namespace, tag), set()).add(key)
        return True

    def resize(self, key: str, value: V, size: int, *, now: float) -> bool:
        """`value`, held under `key`, now takes `size` bytes (it grew, say): the least recently
        used entries leave until the byte bound holds again. False, with nothing changed, when
        `key` does not hold `value` or `size` is beyond `max_entry_bytes`."""
        hit = self._entries.get(key)
        if hit is None or hit.value is not value or size > self.max_entry_bytes:
            return False
        old, namespace, tags = self._meta[key]
        self._meta[key] = (size, namespace, tags)
        self._bytes += size - old
        while self._bytes > self.max_bytes:
            self._evict_oldest(now)
        return True

    def delete(self, key: str) -> bool:
        if key not in self._entries:
            return False
        self._remove(key)
        return True

    def delete_tag(self, namespace: str, tag: str) -> int:
        """Remove the entries put with `tag` in `namespace`; how many there were."""
        keys = self._tagged.get((namespace, tag))
        return self._remove_all(tuple(keys)) if keys else 0

    def clear_namespace(self, namespace: str) -> int:
        keys = self._namespaces.get(namespace)
        return self._remove_all(tuple(keys)) if keys else 0

    def clear(self) -> int:
        removed = len(self._entries)
        self._entries.clear()
        self._meta.clear()
        self._namespaces.clear()
        self._tagged.clear()
        self._bytes = 0
        return removed

    def snapshot(self) -> dict[str, int]:
        """Sizes, bounds and counters for the admin view."""
        return {
            "entries": len(self._entries),
            "bytes": self._bytes,
            "max_entries": self.max_entries,
            "max_bytes": self.max_bytes,
            "max_entry_bytes": self.max_entry_bytes,
            "namespaces": len(self._namespaces),
            "tags": len(self._tagged),
            "hits": self.hits,
            "misses": self.misses,
            "expirations": self.expirations,
            "evictions": self.evictions,
            "rejected": self.rejected,
        }

    def _index_refs(self) -> tuple[int, int]:
        """How many keys the namespace and tag indexes hold in all (for leak checks)."""
        return (
            sum(map(len, self._namespaces.values())),
            sum(map(len, self._tagged.values())),
        )

    def _evict_oldest(self, now: float) -> None:
        """The least recently used entry leaves: an eviction, or an expiration if it was stale."""
        key, hit = self._entries.popitem(last=False)
        self._unindex(key)
        if now < hit.expires_at:
            self.evictions += 1
        else:
            self.expirations += 1

    def _remove_all(self, keys: tuple[str, ...]) -> int:
        for key in keys:
            self._remove(key)
        return len(keys)

    def _remove(self, key: str) -> None:
        del self._entries[key]
        self._unindex(key)

    def _unindex(self, key: str) -> None:
        """Forget `key` everywhere but `_entries`, dropping index sets that become empty."""
        size, namespace, tags = self._meta.pop(key)
        self._bytes -= size
        _discard(self._namespaces, namespace, key)
        for tag in tags:
            _discard(self._tagged, (namespace, tag), key)


def _discard(index: dict[K, set[str]], name: K, key: str) -> None:
    keys = index[name]
    keys.discard(key)
    if not keys:
        del index[name]
