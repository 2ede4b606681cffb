"""A span as OTLP sends it: a plain slotted record, read by the OTLP encoders; and what a sink
of ended spans takes: records of a request's spans (telemetry/request_spans.py), each turned
into its span by the sink, where spans are handled a batch at a time.

OpenTelemetry's SDK makes a span out of a dozen objects (its context, bounded attributes, a
sampling result, a lock, events and links lists), checking every attribute on the way: 70-90 µs
of the event loop's CPU for a request's three spans, and many small objects for the garbage
collector. The proxy's spans are its own and few, their attributes built by its own code, so a
record of what OTLP needs is enough. Numbers are OTLP's own (SpanKind, StatusCode).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Protocol

AttributeValue = str | bool | int | float
Attributes = dict[str, AttributeValue]
SharedAttributes = Mapping[str, AttributeValue]
NO_ATTRIBUTES: Final[SharedAttributes] = MappingProxyType({})

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
    """One span: its ids, name, kind, times, attributes and status. `parent_id` 0: a root
    span. Its attributes are `shared` and its own `attributes`: `shared`, when given, is one
    mapping many spans share as it is (never changed), so the encoders encode it once."""

    __slots__ = (
        "attributes",
        "end_ns",
        "kind",
        "name",
        "parent_id",
        "parent_remote",
        "shared",
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
        shared: SharedAttributes = NO_ATTRIBUTES,
        end_ns: int = 0,
        status: int = UNSET,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.parent_remote = parent_remote
        self.tracestate = tracestate
        self.name = name
        self.kind = kind
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.attributes = attributes
        self.shared = shared
        self.status = status
        self.status_message = ""

    def __repr__(self) -> str:
        return f"Span({self.name!r}, kind={self.kind}, {self.trace_id:032x}/{self.span_id:016x})"


class SpanRecord(Protocol):
    """An ended span as its request recorded it: ids, times and the raw values its name and
    attributes come from."""

    def span(self) -> Span:
        """The span OTLP sends, its name and attributes worked out now, secrets masked."""


class SpanSink(Protocol):
    """Where ended spans go: the exporter (telemetry/span_export.py), or a test's list."""

    def add(self, record: SpanRecord) -> None:
        """Take `record`, ended (on the event loop: at once)."""

    def close(self) -> None:
        """Send what is held, then stop (at shutdown; blocking, so called from a thread)."""
