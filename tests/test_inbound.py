"""Request bodies are checked just enough to route them, with errors naming the field."""

from __future__ import annotations

import pytest

from edgeproxy.errors import ProxyError
from edgeproxy.inbound import parse_body, request_id
from edgeproxy.operations import Operation


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
