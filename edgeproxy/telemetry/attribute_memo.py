"""Span attributes encoded once and remembered, for either OTLP encoding.

Most of a span's attributes are the same from request to request (its operation, deployment,
status code...): each (key, value) is encoded once, and so is each span's `shared` mapping
whole, by identity. Up to `limit` of each are remembered; past that the memory starts afresh,
since the few that vary (request ids) add up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from edgeproxy.telemetry.spans import AttributeValue, SharedAttributes

Part = TypeVar("Part")
Whole = TypeVar("Whole")


class AttributeMemo(Generic[Part, Whole]):
    """`memo(values)`: `values` encoded, each attribute by `each`, joined by `join`;
    `memo.shared(values)` the same for a mapping that is reused whole."""

    __slots__ = ("_each", "_join", "_limit", "_parts", "_shared")

    def __init__(
        self,
        each: Callable[[str, AttributeValue], Part],
        join: Callable[[list[Part]], Whole],
        limit: int = 4096,
    ) -> None:
        self._each = each
        self._join = join
        self._limit = limit
        self._parts: dict[tuple[str, type, AttributeValue], Part] = {}
        # By the mapping's id, the mapping kept alive with its encoding (no id is reused).
        self._shared: dict[int, tuple[SharedAttributes, Whole]] = {}

    def __call__(self, values: Mapping[str, AttributeValue]) -> Whole:
        remembered = self._parts
        if len(remembered) > self._limit:
            remembered.clear()
        parts = []
        for key, value in values.items():
            known = (key, value.__class__, value)  # True == 1, but they encode apart
            part = remembered.get(known)
            if part is None:
                part = remembered[known] = self._each(key, value)
            parts.append(part)
        return self._join(parts)

    def shared(self, values: SharedAttributes) -> Whole:
        remembered = self._shared
        found = remembered.get(id(values))
        if found is None or found[0] is not values:
            if len(remembered) >= self._limit:
                remembered.clear()
            found = remembered[id(values)] = (values, self(values))
        return found[1]
