"""Whatever JSON a client sends or a provider answers, screening decides or rewrites it and
never fails: a property over random shapes (hypothesis)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeproxy.config import parse
from edgeproxy.errors import ProxyError
from edgeproxy.exchange import Exchange
from edgeproxy.operations import Operation
from edgeproxy.security.answer_screen import AnswerScreen
from edgeproxy.security.pii import KINDS, Detector
from edgeproxy.security.pii_redaction import Redaction
from edgeproxy.security.settings import OPERATION_LABELS
from edgeproxy.sse import encode_event
from edgeproxy.state import build_state

FIELDS = ["role", "content", "type", "text", "tool_calls", "function", "arguments", "system"]
FIELDS += ["messages", "prompt", "input", "source", "data", "choices", "delta", "index"]
# The Responses API's: its items, parts and stream events.
FIELDS += ["instructions", "output", "part", "item", "response", "output_index", "content_index"]
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**62), max_value=2**62)
    | st.text(max_size=30)
    | st.sampled_from(["a@b.example", "4111 1111 1111 1111", "[EMAIL_1]", "AKIAIOSFODNN7EXAMPLE"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=20,
)
STATE = build_state(
    parse(
        {
            "providers": {"mock": {"kind": "mock"}},
            "models": {"m": {"deployments": [{"provider": "mock"}]}},
            "guardrails": {
                "policies": {
                    "p": {
                        "pii": {"mode": "redact"},
                        "injection": {"mode": "block"},
                        "blocklist": {"mode": "redact", "terms": ["falcon"]},
                        "output": {"mode": "redact"},
                        "max_messages": 50,
                    }
                },
                "default_policy": "p",
            },
        },
        {},
    )
)
EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@EXAMPLES
@given(st.sampled_from(list(Operation)), st.dictionaries(st.sampled_from(FIELDS), VALUES))
def test_the_screen_stage_decides_on_any_request_shape(
    operation: Operation, payload: dict[str, Any]
) -> None:
    exchange = Exchange(
        request_id="r",
        operation=operation,
        headers={},
        body=orjson.dumps(payload),
        payload=payload,
        model="m",
        stream=False,
        started=0.0,
    )
    exchange.group = STATE.table.resolve("m")
    screen = STATE.guards.screen
    assert screen is not None
    reply = asyncio.run(screen(exchange))
    assert reply is None or isinstance(reply, ProxyError)


@EXAMPLES
@given(
    st.sampled_from(OPERATION_LABELS),
    VALUES,
    st.lists(VALUES, max_size=5),
)
def test_the_answer_screen_rewrites_any_answer_shape(
    label: str, body: Any, events: list[Any]
) -> None:
    redaction = Redaction(Detector(KINDS))
    redaction.redact("write to a@b.example")
    for output in (Detector(KINDS), None):
        screen = AnswerScreen(label, redaction, output, "redact", lambda found: None)
        assert isinstance(screen.whole(orjson.dumps(body)), bytes)
        for event in events:
            assert isinstance(screen.feed(encode_event(orjson.dumps(event))), bytes)
        assert isinstance(screen.feed(b"data: [DONE]\n\n") + screen.finish(), bytes)
