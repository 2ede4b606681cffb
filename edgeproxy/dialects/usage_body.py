"""Finding the usage object of a whole answer without decoding the answer.

The relay reads every non-streamed answer's usage (metrics, cost and budgets need its tokens),
but the answer itself passes through as bytes. Decoding it all costs about 1.1 µs a KB; this
decodes only the `"usage": {...}` object, found from the end, where OpenAI, Anthropic and the
OpenAI-compatible servers put it (after the content, whose strings escape their quotes, so the
key cannot be forged there), in about 2.5 µs whatever the answer's size: 3 µs against 35 µs
for a 32 KB answer. Below `SHORTCUT_OVER` bytes decoding it all is cheaper, and when the object
is not found this way, the caller decodes the whole body as before: this is a shortcut, never
a second opinion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from edgeproxy.dialects.neutral import Usage

_KEY = b'"usage"'
_SEPARATORS = b" \t\r\n:"
_MAX_CLOSES = 8  # closing braces tried: a usage object nests one level of details
SHORTCUT_OVER = 2048  # bytes of answer: below, decoding it all is the cheaper way


def trailing_usage(body: bytes) -> dict[str, Any] | None:
    """The last `"usage"` key's object in `body` when it is a JSON object, decoded alone (None
    too for a body too short to be worth it)."""
    if len(body) < SHORTCUT_OVER:
        return None
    at = body.rfind(_KEY)
    start = body.find(b"{", at) if at >= 0 else -1
    if start < 0 or body[at + len(_KEY) : start].strip(_SEPARATORS):
        return None  # no usage, a string "usage", or a usage that is not an object
    end = _closing_brace(body, start)
    if end < 0:
        return None
    try:
        found = orjson.loads(body[start : end + 1])
    except orjson.JSONDecodeError:
        return None  # a brace inside a string: the caller decodes the whole body
    return found if isinstance(found, dict) else None


def _closing_brace(body: bytes, start: int) -> int:
    """Where the object opened at `start` closes (-1: not within `_MAX_CLOSES` braces)."""
    end = start
    for _ in range(_MAX_CLOSES):
        end = body.find(b"}", end + 1)
        if end < 0 or body.count(b"{", start, end) == body.count(b"}", start, end + 1):
            return end
    return -1


def body_usage(body: bytes, read_usage: Callable[[dict[str, Any]], Usage | None]) -> Usage | None:
    """Usage from a complete non-streaming answer, read by the dialect's `read_usage` from the
    object holding `usage`; None if it has none or is not JSON. The usage object is decoded
    alone when it can be found, else the whole body."""
    found = trailing_usage(body)
    if found is not None:
        return read_usage({"usage": found})
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return read_usage(payload) if isinstance(payload, dict) else None
