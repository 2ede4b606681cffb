"""The Shield wire contract as pure functions: the body built, the verdict parsed, the URL
checked; and the contract's documentation (docs/shield.md and its schemas) kept true."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from edgeproxy.security.shield_contract import (
    MalformedVerdict,
    ShieldURL,
    parse_verdict,
    shield_request,
    shield_url,
    texts_sent,
)
from tests.support.shield_schemas import DOCS, REQUEST_SCHEMA, RESPONSE_SCHEMA

CALL: dict[str, Any] = {
    "request_id": "4f9c2b7e0a3d41c6b8e5f1a2d3c4b5a6",
    "key_id": None,
    "team": None,
    "model": "gpt-4o",
    "operation": "chat",
}
TEXTS = [("developer", "Answer in French."), ("user", "Hello"), ("assistant", "Bonjour")]


@pytest.mark.parametrize("phase", ["input", "output"])
def test_a_request_body_matches_the_schema(phase: Any) -> None:
    body = orjson.loads(shield_request(phase, texts=TEXTS, metadata={"stream": True}, **CALL))
    REQUEST_SCHEMA.validate(body)
    assert body["metadata"] == {"stream": True}


def test_input_sends_every_turn_and_output_one_joined_text() -> None:
    request = orjson.loads(shield_request("input", texts=TEXTS, **CALL))
    assert [m["role"] for m in request["messages"]] == ["developer", "user", "assistant"]
    assert "output" not in request
    answer = orjson.loads(shield_request("output", texts=[("assistant", "a"), ("x", "b")], **CALL))
    assert answer["output"] == {"text": "a\n\nb"}
    assert "messages" not in answer
    assert (texts_sent("input", TEXTS), texts_sent("output", TEXTS)) == (3, 1)


@pytest.mark.parametrize(
    ("phase", "texts", "complaint"),
    [("input", [("model", "hi")], "role"), ("verdict", [("user", "hi")], "phase")],
)
def test_a_request_outside_the_contract_is_refused(
    phase: Any, texts: list[tuple[str, str]], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        shield_request(phase, texts=texts, **CALL)


# Answers the parser and the response schema must judge alike (sent: 2 texts).
VERDICTS: list[tuple[Any, bool]] = [
    ({"action": "allow"}, True),
    ({"action": "allow", "version": 1, "reasons": [], "trace": "abc"}, True),
    ({"action": "block", "reasons": [{"rule": "pii.email", "score": 1}], "message": "No."}, True),
    ({"action": "block", "message": None}, True),
    ({"action": "block", "message": "Nein, ça ne va pas ✋"}, True),
    ({"action": "redact", "redactions": [{"index": 1, "text": ""}]}, True),
    ({"action": "allow", "reasons": [{"rule": "r", "score": 0.5, "detail": "x"}]}, True),
    ({}, False),
    ({"action": "ALLOW"}, False),
    ({"action": "allow", "version": 2}, False),
    ({"action": "allow", "version": True}, False),
    ({"action": "allow", "reasons": {"rule": "r"}}, False),
    ({"action": "allow", "reasons": [{"rule": "r"}] * 33}, False),
    ({"action": "allow", "reasons": ["r"]}, False),
    ({"action": "allow", "reasons": [{"score": 0.5}]}, False),
    ({"action": "allow", "reasons": [{"rule": "-starts-with-dash"}]}, False),
    ({"action": "allow", "reasons": [{"rule": "x" * 65}]}, False),
    ({"action": "allow", "reasons": [{"rule": "r", "score": 1.5}]}, False),
    ({"action": "allow", "reasons": [{"rule": "r", "score": True}]}, False),
    ({"action": "allow", "reasons": [{"rule": "r", "score": "0.5"}]}, False),
    ({"action": "redact"}, False),
    ({"action": "redact", "redactions": []}, False),
    ({"action": "redact", "redactions": [{"index": -1, "text": "x"}]}, False),
    ({"action": "redact", "redactions": [{"index": True, "text": "x"}]}, False),
    ({"action": "redact", "redactions": [{"index": 0}]}, False),
    ({"action": "block", "redactions": [{"index": 0, "text": "x"}]}, False),
    ({"action": "block", "message": ""}, False),
    ({"action": "block", "message": "x" * 501}, False),
    ({"action": "block", "message": "a\tb"}, False),
    ({"action": "block", "message": "trailing line break\n"}, False),
    ({"action": "block", "message": "C1 control \x85"}, False),
    ({"action": "block", "message": 42}, False),
    ([], False),
    ("allow", False),
]


@pytest.mark.parametrize(("answer", "valid"), VERDICTS)
def test_the_parser_and_the_schema_agree(answer: Any, valid: bool) -> None:
    assert RESPONSE_SCHEMA.is_valid(answer) is valid
    if valid:
        verdict = parse_verdict(orjson.dumps(answer), sent=2)
        assert verdict.action == answer["action"]
        assert not verdict.failed
    else:
        with pytest.raises(MalformedVerdict):
            parse_verdict(orjson.dumps(answer), sent=2)


@pytest.mark.parametrize(
    "redactions",
    [[{"index": 2, "text": "x"}], [{"index": 0, "text": "x"}, {"index": 0, "text": "y"}]],
    ids=["index-not-sent", "index-twice"],
)
def test_redactions_must_name_each_sent_text_at_most_once(redactions: list[Any]) -> None:
    answer = {"action": "redact", "redactions": redactions}
    assert RESPONSE_SCHEMA.is_valid(answer), "rules the schema cannot state"
    with pytest.raises(MalformedVerdict):
        parse_verdict(orjson.dumps(answer), sent=2)


def test_a_verdict_keeps_rules_in_order_and_the_top_score() -> None:
    answer = {
        "action": "block",
        "reasons": [{"rule": "b", "score": 0.2}, {"rule": "a"}, {"rule": "c", "score": 0.9}],
    }
    verdict = parse_verdict(orjson.dumps(answer), sent=1)
    assert (verdict.reasons, verdict.score, verdict.message) == (("b", "a", "c"), 0.9, None)


def test_a_body_that_is_not_json_is_malformed() -> None:
    with pytest.raises(MalformedVerdict, match="not JSON"):
        parse_verdict(b'{"action": "allow"', sent=1)


def test_every_json_example_in_the_doc_is_valid() -> None:
    doc = (DOCS / "shield.md").read_text()
    examples = [orjson.loads(block) for block in re.findall(r"```json\n(.*?)```", doc, re.S)]
    assert len(examples) == 5
    for example in examples:
        schema = REQUEST_SCHEMA if "phase" in example else RESPONSE_SCHEMA
        schema.validate(example)


@pytest.mark.parametrize(
    ("url", "origin", "target"),
    [
        ("http://guard:8080", "http://guard:8080", "/"),
        (
            "https://shield.internal/v1/check?tenant=a",
            "https://shield.internal",
            "/v1/check?tenant=a",
        ),
        ("http://[::1]:9000/check", "http://[::1]:9000", "/check"),
    ],
)
def test_a_url_is_split_into_origin_and_target(url: str, origin: str, target: str) -> None:
    assert shield_url(url) == ShieldURL(origin, target)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("ftp://guard/check", "http:// or https://"),
        ("guard:8080/check", "http:// or https://"),
        ("http:///check", "no host"),
        ("http://user:pw@guard/check", "credentials"),
        ("http://user@guard/check", "credentials"),
        ("http://guard/check#frag", "fragment"),
        ("http://guard/check#", "fragment"),
        ("http://guard:99999/check", "port"),
        ("http://guard/a b", "ASCII without spaces"),
        ("http://guard/\u00e9", "ASCII without spaces"),
        ("http://guard/check\r\nX-Evil: 1", "ASCII without spaces"),
    ],
)
def test_a_bad_url_is_refused_saying_why(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        shield_url(url)
