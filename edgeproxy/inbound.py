"""What a client sent: the JSON body checked just enough to route it, with errors naming fields.

Deeper validation is the provider's job; the proxy only needs a model, the stream flag and the
fields without which no provider could answer.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Mapping
from typing import Any

import orjson

from edgeproxy import errors
from edgeproxy.operations import Operation

_random_bits = random.getrandbits
# zlib window bits per content coding: gzip's header, and for deflate the zlib wrapper HTTP
# specifies or, as some clients send it, raw deflate.
_WINDOW_BITS = {
    "gzip": (16 + zlib.MAX_WBITS,),
    "x-gzip": (16 + zlib.MAX_WBITS,),
    "deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS),
}
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}").fullmatch

# field -> (check, what it must be), per operation
_REQUIRED: dict[Operation, tuple[tuple[str, type | tuple[type, ...], str], ...]] = {
    Operation.CHAT: (("messages", list, "required: a list of messages"),),
    Operation.COMPLETIONS: (("prompt", (str, list), "required: a string or a list"),),
    Operation.EMBEDDINGS: (("input", (str, list), "required: a string or a list"),),
    Operation.MESSAGES: (
        ("messages", list, "required: a list of messages"),
        ("max_tokens", int, "required: an integer"),
    ),
    Operation.COUNT_TOKENS: (("messages", list, "required: a list of messages"),),
}


def request_id(headers: Mapping[str, str]) -> str:
    """The client's x-request-id when it is a sane token, else a fresh one."""
    given = headers.get("x-request-id")
    if given and _VALID_REQUEST_ID(given):
        return given
    return new_request_id()


def new_request_id() -> str:
    """32 random hex digits. An id must be unique, not secret: the process's PRNG (seeded from
    the OS) gives one without the system call `os.urandom` makes on every request."""
    return _random_bits(128).to_bytes(16, "big").hex()


def decoded_body(body: bytes, encoding: str, limit: int) -> bytes:
    """The body a client compressed (`Content-Encoding`), decoded: it is what the proxy reads
    for routing, the cache key and translation, and what goes upstream (without the header).
    Raises ProxyError: 415 for a coding it cannot decode, 400 for corrupt data, and 413 once
    the decoded body outgrows `limit` (it is never inflated beyond that)."""
    codings = [c.strip().lower() for c in encoding.split(",")]
    for coding in reversed(codings):  # the last one applied comes off first
        if coding in ("", "identity"):
            continue
        windows = _WINDOW_BITS.get(coding)
        if windows is None:
            raise errors.unsupported_encoding(coding)
        body = _inflate(body, coding, windows, limit)
    return body


def _inflate(data: bytes, coding: str, windows: tuple[int, ...], limit: int) -> bytes:
    for wbits in windows:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(data, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit:
            raise errors.payload_too_large(limit)
        if inflater.eof and not inflater.unused_data:
            return out
        break
    raise errors.undecodable_body(coding)


def parse_body(body: bytes, operation: Operation) -> tuple[dict[str, Any], str, bool]:
    """The payload, its model and whether it asks for a stream; raises ProxyError (400)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.invalid_json(str(exc)) from None
    if not isinstance(payload, dict):
        raise errors.bad_request("The request body must be a JSON object.")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise errors.missing_field("model", "required: a non-empty string")
    for name, kind, expected in _REQUIRED[operation]:
        value = payload.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise errors.missing_field(name, expected)
    stream = payload.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise errors.missing_field("stream", "expected true or false")
    return payload, model, stream and operation.streams
