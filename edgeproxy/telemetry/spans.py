"""A span as the proxy records it: a plain slotted record, read by the OTLP encoders.

OpenTelemetry's SDK makes a span out of a dozen objects (its context, bounded attributes, a
sampling result, a lock, events and links lists), checking every attribute on the way: 70-90 µs
of the event loop's CPU for a request's three spans, and many small objects for the garbage
collector. The proxy's spans are its own and few, their attributes built by its own code, so a
record of what OTLP needs is enough. Numbers are OTLP's own (SpanKind, StatusCode).
"""

from __future__ import annotations

import random
from typing import Final, Protocol

AttributeValue = str | bool | int | float
Attributes = dict[str, AttributeValue]

INTERNAL: Final = 1  # OTLP SpanKind
SERVER: Final = 2
CLIENT: Final = 3
UNSET: Final = 0  # OTLP StatusCode
ERROR: Final = 2

_bits = random.getrandbits


def new_trace_id() -> int:
    """A random, non-zero 128-bit trace id (as the SDK's RandomIdGenerator makes them)."""
    while not (trace_id := _bits(128)):
        pass
    return trace_id


def new_span_id() -> int:
    """A random, non-zero 64-bit span id."""
    while not (span_id := _bits(64)):
        pass
    return span_id


class Span:
    """One span: begun with its ids, name, kind and start; ended with its end time and the
    rest of its attributes and status. `parent_id` 0: a root span."""

    __slots__ = (
        "attributes",
        "end_ns",
        "kind",
        "name",
        "parent_id",
        "parent_remote",
        "span_id",
        "start_ns",
        "status",
        "status_message",
        "trace_id",
        "tracestate",
    )

    def __init__(
        self,
        trace_id: int,
        span_id: int,
        name: str,
        kind: int,
        *,
        parent_id: int,
        parent_remote: bool,
        tracestate: str,
        start_ns: int,
        attributes: Attributes,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.parent_remote = parent_remote
        self.tracestate = tracestate
        self.name = name
        self.kind = kind
        self.start_ns = start_ns
        self.end_ns = 0
        self.attributes = attributes
        self.status = UNSET
        self.status_message = ""

    def __repr__(self) -> str:
        return f"Span({self.name!r}, kind={self.kind}, {self.trace_id:032x}/{self.span_id:016x})"


class SpanSink(Protocol):
    """Where ended spans go: the exporter (telemetry/span_export.py), or a test's list."""

    def add(self, span: Span) -> None:
        """Take `span`, ended (on the event loop: at once)."""

    def close(self) -> None:
        """Send what is held, then stop (at shutdown; blocking, so called from a thread)."""
