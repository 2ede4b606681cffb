"""What a client sent: the JSON body checked just enough to route it, with errors naming fields.

Deeper validation is the provider's job; the proxy only needs a model, the stream flag, the
fields without which no provider could answer, and a body it can encode again (see
MAX_JSON_DEPTH).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from edgeproxy import errors
from edgeproxy.ids import fresh_id
from edgeproxy.operations import Operation
from edgeproxy.wire import codings

# Levels of objects and arrays a body may nest, its own object being the first. Real requests
# stay far below (a chat is about 5 deep; a tool's JSON schema adds 2 per nested property), but
# the proxy encodes bodies again (a model name mapped in, a translation, a cache key), and
# orjson parses 1024 levels but encodes only 254: without a limit of its own the proxy would
# accept a valid body and then fail on it. 128 also leaves a translation room to wrap a body.
MAX_JSON_DEPTH = 128
# orjson's encoder refuses more levels than this ("Recursion limit reached"). Checked by the
# tests at MAX_JSON_DEPTH and one above: a new orjson with another limit fails them.
_ENCODER_DEPTH = 254
# A request id as the proxy takes it from a client (and as feedback must name one).
valid_request_id = re.compile(r"[A-Za-z0-9._:\-]{1,128}").fullmatch

# field -> (check, what it must be), per operation
_REQUIRED: dict[Operation, tuple[tuple[str, type | tuple[type, ...], str], ...]] = {
    Operation.CHAT: (("messages", list, "required: a list of messages"),),
    Operation.COMPLETIONS: (("prompt", (str, list), "required: a string or a list"),),
    Operation.EMBEDDINGS: (("input", (str, list), "required: a string or a list"),),
    Operation.RESPONSES: (),  # `input` may be left out for `previous_response_id` or `prompt`
    Operation.MESSAGES: (
        ("messages", list, "required: a list of messages"),
        ("max_tokens", int, "required: an integer"),
    ),
    Operation.COUNT_TOKENS: (("messages", list, "required: a list of messages"),),
}


def request_id(headers: Mapping[str, str]) -> str:
    """The client's x-request-id when it is a sane token, else a fresh one."""
    given = headers.get("x-request-id")
    if given and valid_request_id(given):
        return given
    return fresh_id()


def decoded_body(body: bytes, encoding: str, limit: int) -> bytes:
    """The body a client compressed (`Content-Encoding`), decoded: it is what the proxy reads
    for routing, the cache key and translation, and what goes upstream (without the header).
    Raises ProxyError: 415 for a coding it cannot decode, 400 for corrupt data, and 413 once
    the decoded body outgrows `limit` (it is never inflated beyond that)."""
    try:
        return codings.decode(body, encoding, limit)
    except codings.UnknownCoding as exc:
        raise errors.unsupported_encoding(str(exc)) from None
    except codings.TooLarge:
        raise errors.payload_too_large(limit) from None
    except codings.Undecodable as exc:
        raise errors.undecodable_body(str(exc)) from None


def parse_body(body: bytes, operation: Operation) -> tuple[dict[str, Any], str, bool]:
    """The payload, its model and whether it asks for a stream; raises ProxyError (400)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.invalid_json(str(exc)) from None
    if not _few_containers(body) and _nested_too_deep(payload):
        raise errors.json_too_deep(MAX_JSON_DEPTH)
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


def _few_containers(body: bytes) -> bool:
    """Whether `body` holds at most MAX_JSON_DEPTH `{` and `[` bytes, and so cannot nest
    deeper (those inside strings count too, which errs on the safe side). bytes.find is memchr
    and the count stops past the limit: a few microseconds whatever the size, where
    bytes.count reads byte by byte and costs a long body as much as parsing it."""
    seen = 0
    for opener in b"{[":
        at = body.find(opener)
        while at >= 0:
            seen += 1
            if seen > MAX_JSON_DEPTH:
                return False
            at = body.find(opener, at + 1)
    return True


def _nested_too_deep(payload: Any) -> bool:
    """Whether `payload` nests more than MAX_JSON_DEPTH levels. orjson's encoder counts levels
    in C and refuses to pass its own limit, so the payload is encoded inside just enough lists
    to reach that limit exactly at MAX_JSON_DEPTH. A walk in Python would have to visit every
    value of a wide body (many tools, each with its schema) and costs about five times more."""
    nest = payload
    for _ in range(_ENCODER_DEPTH - MAX_JSON_DEPTH):
        nest = [nest]
    try:
        orjson.dumps(nest)
    except orjson.JSONEncodeError:
        return True
    return False
