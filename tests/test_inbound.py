"""Request bodies are checked just enough to route them, with errors naming the field."""

from __future__ import annotations

import orjson
import pytest

from edgeproxy.errors import ProxyError
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
