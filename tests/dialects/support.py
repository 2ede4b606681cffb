"""What the dialect tests share: byte streams cut every way a network could cut them and
decoded as the relay decodes them, neutral values as JSON to compare with goldens, and the
images and requests several codecs' tests send."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

from edgeproxy.dialects.neutral import ChatRequest, Message, StreamEvent, Text
from edgeproxy.dialects.translation import StreamDecoder
from edgeproxy.errors import ProxyError

# A one-pixel PNG and the start of a JPEG, base64-encoded.
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
JPEG = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB"
# Redacted thinking as Claude sends it: opaque, to be sent back unchanged.
REDACTED = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"

Decoded = tuple[list[StreamEvent], ProxyError | None]


def splits(data: bytes, seed: int = 11, count: int = 60) -> list[list[bytes]]:
    """Every two-way split, `count` random splits into up to 31 pieces, and byte by byte."""
    ways = [[data[:i], data[i:]] for i in range(len(data) + 1)]
    rng = random.Random(seed)
    for _ in range(count if len(data) > 1 else 0):
        cuts = sorted(rng.sample(range(1, len(data)), min(rng.randint(2, 30), len(data) - 1)))
        ways.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    ways.append([bytes([b]) for b in data])
    return ways


def relay_decode(decoder: StreamDecoder, chunks: list[bytes]) -> Decoded:
    """What a relay sees: the events fed, then close; a raised error ends the stream."""
    events: list[StreamEvent] = []
    try:
        for chunk in chunks:
            events += decoder.feed(chunk)
        events += decoder.close()
    except ProxyError as err:
        return events, err
    return events, None


def assert_decodes_at_every_split(
    decode: Callable[[list[bytes]], Decoded], data: bytes, expected: list[StreamEvent]
) -> None:
    """`data` decodes to `expected`, with no error, fed whole and cut every way `splits` cuts."""
    assert decode([data]) == (expected, None)
    for chunks in splits(data):
        assert decode(chunks) == (expected, None)


def plain(obj: object) -> Any:
    """A neutral value as JSON, each dataclass tagged with its type, to compare with goldens."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return {"type": type(obj).__name__, **fields}
    if isinstance(obj, list | tuple):
        return [plain(item) for item in obj]
    if isinstance(obj, dict):
        return {key: plain(value) for key, value in obj.items()}
    return obj


def ask(text: str, **fields: Any) -> ChatRequest:
    """A one-turn request."""
    return ChatRequest(model="public", messages=[Message("user", [Text(text)])], **fields)
