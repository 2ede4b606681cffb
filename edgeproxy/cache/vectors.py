"""The semantic cache's questions and vectors: what is embedded, and where vectors are found.

A chat request is a semantic candidate when its last turn is the user's and is text alone.
That text, and only that, is embedded; everything else (tenant, model group, system prompt,
earlier turns, tools, sampling parameters) must match exactly, so it is hashed into the
question's `partition` by the exact cache key itself (`keys.cache_key` over the request with
the last turn's text replaced by a marker, under a namespace of its own), with the same
settings and equivalences. Vectors are compared only within one partition.

`VectorIndex` holds unit vectors per partition in process, each under the cache entry key it
answers from, with the text it was made from (for the lexical guard): bounded per partition and
in total, the oldest out first. A search is one matrix-vector product over its partition.
`encode_vector`/`decode_vector` are the bytes of one vector shared through Redis.

Pure (numpy, no I/O); numpy comes with the `semantic` extra, so this module is imported only
where the semantic cache is configured.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

from edgeproxy.cache.keys import cache_key
from edgeproxy.config import CacheKeySettings
from edgeproxy.operations import Operation

Vector: TypeAlias = npt.NDArray[np.float32]

_PARTITION: Final = "\x00semantic-partition/1"  # appended to the tenant namespace
_MARK: Final = "\x00last-user-turn\x00"  # stands for the embedded text in the partition key
_CHAT: Final = frozenset({Operation.CHAT, Operation.MESSAGES})


# --- questions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Question:
    """The text to embed and the exact hash of everything else (64 hex digits)."""

    partition: str
    text: str


def question(
    operation: Operation,
    payload: dict[str, Any],
    group: str,
    namespace: str,
    settings: CacheKeySettings,
    *,
    max_chars: int = 1000,
) -> Question | None:
    """The semantic question of a request, or None when it has none: not a chat request, a
    last turn that is not the user's (an assistant prefill, a tool result), that holds more
    than one text part or anything but text, or whose text is blank or longer than
    `max_chars` (a long text's embedding averages away the detail that changes its answer,
    and the local model reads 256 tokens at most)."""
    if operation not in _CHAT or type(payload) is not dict:
        return None
    messages = payload.get("messages")
    if type(messages) is not list or not messages:
        return None
    last = messages[-1]
    if type(last) is not dict or last.get("role") != "user":
        return None
    found = _last_text(last.get("content"))
    if found is None:
        return None
    text, marked = found
    if not text.strip() or len(text) > max_chars:
        return None
    body = {**payload, "messages": [*messages[:-1], {**last, "content": marked}]}
    return Question(cache_key(operation, body, group, namespace + _PARTITION, settings), text)


def _last_text(content: object) -> tuple[str, object] | None:
    """The text of a turn's content and the content with the marker in its place."""
    if type(content) is str:
        return content, _MARK
    if type(content) is not list or len(content) != 1:
        return None
    part = content[0]
    if type(part) is not dict or part.get("type") != "text" or type(part.get("text")) is not str:
        return None
    return part["text"], [{**part, "text": _MARK}]


# --- the index ---------------------------------------------------------------------------------


class Match(NamedTuple):
    entry_key: str
    score: float  # cosine similarity
    text: str  # the text the stored vector was made from


class _Partition:
    __slots__ = ("born", "keys", "matrix", "rows", "texts")

    def __init__(self, dims: int, capacity: int) -> None:
        self.matrix: Vector = np.zeros((capacity, dims), dtype=np.float32)
        self.keys: list[str] = []
        self.texts: list[str] = []
        self.born: list[int] = []  # insertion numbers, to find the oldest
        self.rows: dict[str, int] = {}


class VectorIndex:
    """Unit vectors of `dims` numbers by partition: at most `max_per_partition` in one, at
    most `max_total` in all; adding beyond either bound drops the oldest (of the partition, or
    of all). Adding an entry key again replaces its vector. Not thread-safe: one event loop."""

    def __init__(self, dims: int, *, max_per_partition: int = 1000, max_total: int = 10_000):
        if dims < 1 or max_per_partition < 1 or max_total < 1:
            raise ValueError("dims, max_per_partition and max_total must be at least 1")
        self.dims = dims
        self._per_partition = max_per_partition
        self._total = max_total
        self._partitions: dict[str, _Partition] = {}
        self._where: OrderedDict[str, str] = OrderedDict()  # entry key → partition, oldest first
        self._added = 0

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, entry_key: object) -> bool:
        return entry_key in self._where

    @property
    def partitions(self) -> int:
        return len(self._partitions)

    def add(self, partition: str, entry_key: str, vector: Vector, text: str) -> None:
        unit = self._unit(vector)
        if unit is None:
            raise ValueError(f"not a usable vector of {self.dims} finite numbers")
        self.remove(entry_key)
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition(self.dims, min(8, self._per_partition))
        elif len(part.keys) >= self._per_partition:
            self.remove(part.keys[int(np.argmin(part.born))])
        elif len(part.keys) == len(part.matrix):
            size = min(2 * len(part.matrix), self._per_partition)
            grown = np.zeros((size, self.dims), dtype=np.float32)
            grown[: len(part.keys)] = part.matrix
            part.matrix = grown
        row = len(part.keys)
        part.matrix[row] = unit
        part.keys.append(entry_key)
        part.texts.append(text)
        part.born.append(self._added)
        part.rows[entry_key] = row
        self._partitions.setdefault(partition, part)  # back if removing its oldest emptied it
        self._where[entry_key] = partition
        self._added += 1
        while len(self._where) > self._total:
            self.remove(next(iter(self._where)))

    def remove(self, entry_key: str) -> bool:
        """Forget an entry (expired, purged, or found missing in the exact cache)."""
        partition = self._where.pop(entry_key, None)
        if partition is None:
            return False
        part = self._partitions[partition]
        row = part.rows.pop(entry_key)
        last = len(part.keys) - 1
        if row != last:  # the last row moves into the hole
            part.matrix[row] = part.matrix[last]
            part.keys[row] = part.keys[last]
            part.texts[row] = part.texts[last]
            part.born[row] = part.born[last]
            part.rows[part.keys[row]] = row
        del part.keys[last], part.texts[last], part.born[last]
        if not part.keys:
            del self._partitions[partition]
        return True

    def search(self, partition: str, vector: Vector, threshold: float) -> Match | None:
        """The most similar entry of `partition` whose cosine with `vector` is at least
        `threshold`, or None."""
        found = self.matches(partition, vector, threshold, 1)
        return found[0] if found else None

    def matches(self, partition: str, vector: Vector, threshold: float, limit: int) -> list[Match]:
        """Up to `limit` entries at or above `threshold`, the most similar first (so a caller
        whose guard refuses the best may try the next)."""
        part = self._partitions.get(partition)
        unit = self._unit(vector)
        if part is None or unit is None or limit < 1:
            return []
        scores = part.matrix[: len(part.keys)] @ unit
        rows = np.flatnonzero(scores >= threshold)
        if len(rows) > limit:
            rows = rows[np.argpartition(-scores[rows], limit - 1)[:limit]]
        ranked = sorted(rows.tolist(), key=lambda row: -scores[row])
        return [Match(part.keys[row], float(scores[row]), part.texts[row]) for row in ranked]

    def _unit(self, vector: Vector) -> Vector | None:
        array = np.asarray(vector, dtype=np.float32)
        if array.shape != (self.dims,):
            return None
        norm = float(np.linalg.norm(array))
        if not np.isfinite(norm) or norm == 0.0:
            return None
        unit: Vector = array / np.float32(norm)
        return unit


# --- bytes for Redis ---------------------------------------------------------------------------

_HALF: Final = b"h"  # IEEE half precision, little-endian: 768 bytes for 384 dimensions
_SINGLE: Final = b"f"  # single precision, little-endian
_TYPES: Final[dict[bytes, np.dtype[Any]]] = {_HALF: np.dtype("<f2"), _SINGLE: np.dtype("<f4")}


def encode_vector(vector: Vector, *, half: bool = True) -> bytes:
    """A one-byte tag then the numbers. Half precision moves a unit vector's cosines by less
    than 0.001, far below any threshold's meaning, at half the bytes."""
    tag = _HALF if half else _SINGLE
    return tag + np.asarray(vector).astype(_TYPES[tag]).tobytes()


def decode_vector(data: bytes, dims: int) -> Vector | None:
    """The unit vector in `data`, or None for anything else (a miss, never an error)."""
    kind = _TYPES.get(data[:1])
    if kind is None or len(data) != 1 + dims * kind.itemsize:
        return None
    vector = np.frombuffer(data, dtype=kind, offset=1).astype(np.float32)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        return None
    unit: Vector = vector / np.float32(norm)
    unit.flags.writeable = False
    return unit
