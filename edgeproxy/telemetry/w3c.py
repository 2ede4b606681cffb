"""W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` and `tracestate`
headers a client sends, read, and each upstream attempt's, written.

Read as OpenTelemetry's propagator reads them, so tracing behaves as it did on its SDK: a
`traceparent` is `version-traceid-parentid-flags` in lowercase hex; ids of all zeros and the
version `ff` are invalid; version `00` is exactly those four fields (55 characters), a later
version may carry more after a `-` and is read by its first four. An invalid header starts a
new trace. A `tracestate` travels on as the client sent it (optional whitespace trimmed), but
only whole: one malformed or repeated member, more than 32 members or more than 8192
characters, and it is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, NamedTuple

SAMPLED: Final = 0x01
RANDOM_TRACE_ID: Final = 0x02  # W3C level 2: the trace id's low 56 bits are random
_TRACEPARENT = re.compile(
    r"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:(-.*)|[ \t]*)"
)
_TRACEPARENT_MAX_LENGTH = 512
_KEY = r"[a-z][_0-9a-z\-\*\/]{0,255}|[a-z0-9][_0-9a-z\-\*\/]{0,240}@[a-z][_0-9a-z\-\*\/]{0,13}"
_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_MEMBER = re.compile(f"({_KEY})=(?:{_VALUE})")
_TRACESTATE_MAX_MEMBERS = 32
_TRACESTATE_MAX_LENGTH = 8192
_HEX_BYTES = tuple(f"{byte:02x}" for byte in range(256))


class Parent(NamedTuple):
    """The client's span, as its `traceparent` (and `tracestate`) named it."""

    trace_id: int
    span_id: int
    flags: int
    tracestate: str  # "" when absent or dropped


def parent_of(headers: Mapping[str, str]) -> Parent | None:
    """The remote parent the request's headers name, None when there is none or it is
    invalid (the request then starts its own trace)."""
    header = headers.get("traceparent")
    if not header or len(header) > _TRACEPARENT_MAX_LENGTH:
        return None
    match = _TRACEPARENT.fullmatch(header)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace, span = int(trace_id, 16), int(span_id, 16)
    if not trace or not span:
        return None
    return Parent(trace, span, int(flags, 16), tracestate(headers.get("tracestate")))


def tracestate(header: str | None) -> str:
    """The `tracestate` to keep: its members, trimmed and joined, or "" when it is absent or
    not well-formed (as OpenTelemetry drops it)."""
    if not header or len(header) > _TRACESTATE_MAX_LENGTH:
        return ""
    members = [member.strip(" \t") for member in header.split(",")]
    members = [member for member in members if member]  # empty members are allowed
    if len(members) > _TRACESTATE_MAX_MEMBERS:
        return ""
    keys = set()
    for member in members:
        match = _MEMBER.fullmatch(member)
        if match is None or match.group(1) in keys:
            return ""
        keys.add(match.group(1))
    return ",".join(members)


def traceparent(trace_id: int, span_id: int, flags: int) -> str:
    """A version 00 `traceparent` naming the span `span_id` of the trace `trace_id` (through
    bytes: half the CPU of formatting the ints with a width, on every upstream attempt)."""
    trace, span = trace_id.to_bytes(16, "big").hex(), span_id.to_bytes(8, "big").hex()
    return f"00-{trace}-{span}-{_HEX_BYTES[flags]}"
