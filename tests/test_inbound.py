"""Request bodies are checked just enough to route them, with errors naming the field."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import orjson
import pytest

from edgeproxy import inbound
from edgeproxy.errors import ProxyError
from edgeproxy.ids import fresh_id
from edgeproxy.inbound import MAX_JSON_DEPTH, parse_body, request_id
from edgeproxy.operations import Operation

CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]'


def nested(depth: int, kind: str) -> bytes:
    """A chat body whose deepest point is `depth` levels down, its own object the first: an
    extra field holding arrays in arrays, or objects in objects, `depth - 1` levels of them."""
    levels = depth - 1
    if kind == "arrays":
        nest = b"[" * levels + b"]" * levels
    else:
        nest = b'{"a": ' * (levels - 1) + b"{}" + b"}" * (levels - 1)
    return CHAT + b', "nest": ' + nest + b"}"


@pytest.mark.parametrize(
    ("body", "operation", "message"),
    [
        (b"{nope", Operation.CHAT, "The request body is not valid JSON."),
        (b"[1, 2]", Operation.CHAT, "The request body must be a JSON object."),
        (b'{"messages": []}', Operation.CHAT, "model: required: a non-empty string"),
        (b'{"model": 5, "messages": []}', Operation.CHAT, "model: required: a non-empty string"),
        (b'{"model": "m"}', Operation.CHAT, "messages: required: a list of messages"),
        (b'{"model": "m", "messages": []}', Operation.MESSAGES, "max_tokens: required: an integer"),
        (
            b'{"model": "m", "messages": [], "max_tokens": true}',
            Operation.MESSAGES,
            "max_tokens: required: an integer",
        ),
        (b'{"model": "m"}', Operation.EMBEDDINGS, "input: required: a string or a list"),
        (
            b'{"model": "m", "messages": [], "stream": "yes"}',
            Operation.CHAT,
            "stream: expected true or false",
        ),
    ],
)
def test_bad_bodies_are_400s_that_name_the_problem(
    body: bytes, operation: Operation, message: str
) -> None:
    with pytest.raises(ProxyError) as caught:
        parse_body(body, operation)
    assert (caught.value.status, caught.value.message) == (400, message)


@pytest.mark.parametrize("kind", ["arrays", "objects"])
def test_bodies_nested_as_deep_as_the_limit_are_accepted(kind: str) -> None:
    payload, _, _ = parse_body(nested(MAX_JSON_DEPTH, kind), Operation.CHAT)
    assert len(orjson.dumps(payload)) > 0, "and the proxy can encode them again"


@pytest.mark.parametrize("kind", ["arrays", "objects"])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 255, 1024])
def test_bodies_nested_deeper_than_the_limit_are_400s_that_name_it(kind: str, depth: int) -> None:
    with pytest.raises(ProxyError) as caught:
        parse_body(nested(depth, kind), Operation.CHAT)
    assert (caught.value.status, caught.value.code) == (400, "json_too_deep")
    assert f"more than {MAX_JSON_DEPTH} levels deep" in caught.value.message


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    brackets = "[{" * MAX_JSON_DEPTH
    messages = [{"role": "user", "content": brackets}]
    body = orjson.dumps({"model": "m", "messages": messages, "user": "}]" * MAX_JSON_DEPTH})
    assert parse_body(body, Operation.CHAT)[0]["messages"] == messages


def test_wide_bodies_with_many_shallow_objects_are_accepted() -> None:
    tools = [{"type": "function", "function": {"name": f"f{i}"}} for i in range(MAX_JSON_DEPTH)]
    body = orjson.dumps({"model": "m", "messages": [], "tools": tools})
    assert parse_body(body, Operation.CHAT)[0]["tools"] == tools


def test_stream_flag_only_counts_where_streaming_exists() -> None:
    assert parse_body(b'{"model":"m","messages":[],"stream":true}', Operation.CHAT)[2] is True
    assert parse_body(b'{"model":"m","input":"x","stream":true}', Operation.EMBEDDINGS)[2] is False


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("abc-123", True),
        ("req_01HX:9.z", True),
        ("x" * 129, False),
        ("has space", False),
        ("", False),
    ],
)
def test_client_request_ids_are_kept_only_when_sane(given: str, kept: bool) -> None:
    rid = request_id({"x-request-id": given})
    assert (rid == given) is kept
    assert len(rid) <= 128


# --- compressed bodies ---------------------------------------------------------------------

BODY = b'{"model": "gpt-4o", "messages": []}'


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),  # raw deflate
        ("identity", lambda data: data),
        ("gzip, deflate", lambda data: zlib.compress(gzip.compress(data))),
        ("GZip", gzip.compress),
    ],
)
def test_a_compressed_body_is_decoded(encoding: str, compress: Any) -> None:
    assert inbound.decoded_body(compress(BODY), encoding, 1024) == BODY


def test_an_unknown_content_coding_is_a_415() -> None:
    with pytest.raises(ProxyError) as raised:
        inbound.decoded_body(BODY, "br", 1024)
    assert raised.value.status == 415 and "'br'" in raised.value.message


@pytest.mark.parametrize(
    "data", [b"not gzip at all", gzip.compress(BODY)[:-6], gzip.compress(BODY) + b"x"]
)
def test_corrupt_or_truncated_compressed_data_is_a_400(data: bytes) -> None:
    with pytest.raises(ProxyError) as raised:
        inbound.decoded_body(data, "gzip", 1024)
    assert raised.value.status == 400


def test_a_body_is_never_inflated_beyond_the_limit() -> None:
    bomb = gzip.compress(b"{" + b" " * 10_000_000 + b"}")
    with pytest.raises(ProxyError) as raised:
        inbound.decoded_body(bomb, "gzip", 4096)
    assert raised.value.status == 413


def test_a_fresh_id_is_32_hex_digits_and_never_repeats() -> None:
    ids = {fresh_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 and i == i.lower() for i in ids)
