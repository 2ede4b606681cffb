"""Placeholders: what leaves with a request, what comes back in its answer, streamed or not."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeproxy.security.pii import KINDS, Detector
from edgeproxy.security.pii_redaction import PLACEHOLDER, Redaction, StreamRestorer
from edgeproxy.security.prompt_text import Channel, request_texts, stream_texts

DETECTOR = Detector(KINDS)
PEM = (
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5\n"
    "-----END EC PRIVATE KEY-----"
)


def redaction(*texts: str) -> tuple[Redaction, list[str]]:
    request = Redaction(DETECTOR)
    return request, [request.redact(text) for text in texts]


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("mail jane@example.com now", "mail [EMAIL_1] now"),
        ("call +1 (415) 555-2671 or 020 7946 0958", "call [PHONE_1] or [PHONE_2]"),
        ("card 4111 1111 1111 1111", "card [CREDIT_CARD_1]"),
        ("iban DE89 3704 0044 0532 0130 00", "iban [IBAN_1]"),
        ("ssn 123-45-6789", "ssn [SSN_1]"),
        ("from 10.0.0.1 and ::1", "from [IP_1] and [IP_2]"),
        ("key AKIAIOSFODNN7EXAMPLE", "key [SECRET_1]"),
        (f"the key:\n{PEM}\nthanks", "the key:\n[SECRET_1]\nthanks"),
        ("nothing personal here, version 1.2.3.4", "nothing personal here, version 1.2.3.4"),
    ],
)
def test_redact_replaces_each_value_and_restore_puts_it_back(text: str, redacted: str) -> None:
    request, (out,) = redaction(text)
    assert out == redacted
    assert request.restore(out) == text


def test_the_same_value_gets_the_same_placeholder_across_the_request() -> None:
    request, out = redaction(
        "from a@example.com to b@example.com",
        "cc a@example.com, phone 415-555-2671",
        "again b@example.com",
    )
    assert out == [
        "from [EMAIL_1] to [EMAIL_2]",
        "cc [EMAIL_1], phone [PHONE_1]",
        "again [EMAIL_2]",
    ]
    assert request.count == 3
    assert request.kinds_found == {"email": 2, "phone": 1}
    assert request.restore("Reply to [EMAIL_2], not [EMAIL_1]; call [PHONE_1].") == (
        "Reply to b@example.com, not a@example.com; call 415-555-2671."
    )


def test_an_untouched_request_is_falsy_and_restores_nothing() -> None:
    request, out = redaction("plain text, 12 apples")
    assert out == ["plain text, 12 apples"]
    assert not request
    assert request.count == 0
    assert request.placeholders == ()
    assert request.restore("[EMAIL_1]") == "[EMAIL_1]"


def test_placeholders_the_request_did_not_make_stay_as_they_are() -> None:
    request, out = redaction("mail a@example.com")
    assert out == ["mail [EMAIL_1]"]
    assert request.restore("[EMAIL_1] [EMAIL_2] [PHONE_1] [EMAIL_1 ] [email_1]") == (
        "a@example.com [EMAIL_2] [PHONE_1] [EMAIL_1 ] [email_1]"
    )


def test_a_placeholder_already_in_the_text_is_not_reused() -> None:
    request, out = redaction("the template says [EMAIL_1]; mine is a@example.com")
    assert out == ["the template says [EMAIL_1]; mine is [EMAIL_2]"]
    assert request.restore(out[0]) == "the template says [EMAIL_1]; mine is a@example.com"


def test_every_placeholder_matches_the_documented_format() -> None:
    request, _ = redaction(
        "a@example.com 415-555-2671 4111 1111 1111 1111 DE89 3704 0044 0532 0130 00 "
        "123-45-6789 10.0.0.1 AKIAIOSFODNN7EXAMPLE"
    )
    assert request.placeholders == (
        "[EMAIL_1]",
        "[PHONE_1]",
        "[CREDIT_CARD_1]",
        "[IBAN_1]",
        "[SSN_1]",
        "[IP_1]",
        "[SECRET_1]",
    )
    assert all(PLACEHOLDER.fullmatch(name) for name in request.placeholders)


def test_json_source_is_redacted_as_its_value_and_restored_escaped_or_not() -> None:
    request = Redaction(DETECTOR)
    arguments = '{"pem": "' + PEM.replace("\n", "\\n") + '", "to": "a@example.com"}'
    redacted = request.redact(arguments, json=True)
    assert redacted == '{"pem": "[SECRET_1]", "to": "[EMAIL_1]"}'
    assert request.restore(redacted, json=True) == arguments
    assert request.restore("[SECRET_1]") == PEM  # the value itself, in a text channel
    assert request.redact(f"pasted again: {PEM}") == "pasted again: [SECRET_1]"


def test_audit_counts_never_hold_values() -> None:
    request, _ = redaction("a@example.com and AKIAIOSFODNN7EXAMPLE")
    assert dict(request.kinds_found) == {"email": 1, "secret": 1}


# --- streams -----------------------------------------------------------------------------

ORIGINAL = (
    "Write to jane@example.com or call 415-555-2671 [see notes] about card 4111 1111 1111 1111."
)


def streamed(restorer: StreamRestorer, deltas: list[str]) -> str:
    return "".join(restorer.feed(delta) for delta in deltas) + restorer.flush()


@pytest.mark.parametrize("json", [False, True])
def test_a_placeholder_split_anywhere_in_two_is_restored(json: bool) -> None:
    request, (answer,) = redaction(ORIGINAL)
    assert answer == "Write to [EMAIL_1] or call [PHONE_1] [see notes] about card [CREDIT_CARD_1]."
    for cut in range(len(answer) + 1):
        restorer = StreamRestorer(request, json)
        assert streamed(restorer, [answer[:cut], answer[cut:]]) == ORIGINAL


def test_a_placeholder_fed_one_character_at_a_time_is_restored() -> None:
    request, (answer,) = redaction(ORIGINAL)
    assert streamed(StreamRestorer(request), list(answer)) == ORIGINAL


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from(
            ["[EMAIL_1]", "[PHONE_1]", "[EMAIL_2]", "[", "]", "[EMAIL", "_1", "x", " ", "[[", "é"]
        ),
        max_size=30,
    ),
    data=st.data(),
)
def test_any_split_of_any_answer_restores_as_the_whole_does(
    pieces: list[str], data: st.DataObject
) -> None:
    request, _ = redaction("a@example.com b@example.com 415-555-2671")
    answer = "".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(answer)), max_size=8)))
    deltas = [answer[a:b] for a, b in zip([0, *cuts], [*cuts, len(answer)], strict=True)]
    assert streamed(StreamRestorer(request), deltas) == request.restore(answer)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="[]EMAIL_12PHONx .", max_size=12), max_size=20))
def test_what_is_held_back_is_never_more_than_a_placeholder_less_one(deltas: list[str]) -> None:
    request, _ = redaction("a@example.com 415-555-2671")
    longest = max(map(len, request.placeholders))
    restorer = StreamRestorer(request)
    fed = released = ""
    for delta in deltas:
        fed += delta
        released += restorer.feed(delta)
        if PLACEHOLDER.search(fed) is None:  # restored text would change lengths
            assert fed.startswith(released)
            assert len(fed) - len(released) <= longest - 1


@pytest.mark.parametrize(
    ("deltas", "released"),
    [
        (["an array [", "0]"], ["an array ", "[0]"]),
        (["[EMAIL_1", "0]"], ["", "[EMAIL_10]"]),  # only EMAIL_1 exists: [EMAIL_10] is text
        (["[EMAIL_", "x"], ["", "[EMAIL_x"]),
        (["[", "EMAIL_1]!"], ["", "a@example.com!"]),
        (["see [PHONE", "_1]"], ["see [PHONE", "_1]"]),  # no phone was redacted
    ],
)
def test_a_fragment_is_released_as_soon_as_it_cannot_be_a_placeholder(
    deltas: list[str], released: list[str]
) -> None:
    request, _ = redaction("a@example.com")
    restorer = StreamRestorer(request)
    assert [restorer.feed(delta) for delta in deltas] == released


def test_flush_releases_a_fragment_that_never_completed() -> None:
    request, _ = redaction("a@example.com")
    restorer = StreamRestorer(request)
    assert restorer.feed("the end [EMA") == "the end "
    assert restorer.flush() == "[EMA"
    assert restorer.flush() == ""


def test_a_restorer_of_an_untouched_request_passes_deltas_through() -> None:
    request, _ = redaction("nothing here")
    restorer = StreamRestorer(request)
    assert restorer.feed("[EMAIL_1") == "[EMAIL_1"
    assert restorer.flush() == ""


def test_json_channel_restores_escaped_values() -> None:
    request = Redaction(DETECTOR)
    request.redact(f"key {PEM}")
    restorer = StreamRestorer(request, json=True)
    out = streamed(restorer, ['{"key": "[SEC', 'RET_1]"}'])
    assert out == '{"key": "' + PEM.replace("\n", "\\n") + '"}'


def test_a_request_redacted_through_its_slots_gets_its_streamed_answer_restored() -> None:
    payload = {
        "messages": [
            {"role": "system", "content": "Support desk. Escalate to lead@example.com."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "I'm a@example.com, +1 415-555-2671"}],
            },
        ]
    }
    request = Redaction(DETECTOR)
    for slot in request_texts("chat", payload):
        slot.set(request.redact(slot.get(), slot.json))
    assert payload["messages"][1]["content"][0]["text"] == "I'm [EMAIL_2], [PHONE_1]"
    assert request.kinds_found == {"email": 2, "phone": 1}

    def chunk(content: str | None = None, arguments: str | None = None) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        if content is not None:
            delta["content"] = content
        if arguments is not None:
            delta["tool_calls"] = [{"index": 0, "function": {"arguments": arguments}}]
        return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}

    answer = [
        chunk("Hello [EMA"),
        chunk("IL_2], I'll"),
        chunk(" call [PHONE_"),
        chunk(arguments='{"to": "[EMAIL'),
        chunk("1] now.", '_1]"}'),
    ]
    restorers: dict[Channel, StreamRestorer] = {}
    texts: dict[Channel, str] = {}
    for data in answer:
        for slot in stream_texts("chat", data):
            restorer = restorers.setdefault(slot.channel, StreamRestorer(request, slot.json))
            slot.set(restorer.feed(slot.get()))
            texts[slot.channel] = texts.get(slot.channel, "") + slot.get()
    for channel, restorer in restorers.items():
        texts[channel] += restorer.flush()
    assert texts == {
        ("content", 0, 0): "Hello a@example.com, I'll call +1 415-555-2671 now.",
        ("arguments", 0, 0): '{"to": "lead@example.com"}',
    }
