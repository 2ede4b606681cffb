"""What a client sent: the JSON body checked just enough to route it, with errors naming fields.

Deeper validation is the provider's job; the proxy only needs a model, the stream flag and the
fields without which no provider could answer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

import orjson

from edgeproxy import errors
from edgeproxy.operations import Operation

_random_bits = random.getrandbits
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
