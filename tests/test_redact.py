"""Masking configured credentials in text and bytes."""

from __future__ import annotations

import orjson
import pytest

from edgeproxy.redact import MASK, Redactor

KEY = "sk-upstream-0123456789abcdef"


@pytest.mark.parametrize(
    ("secrets", "text", "expected"),
    [
        ([KEY], f"invalid key {KEY}.", f"invalid key {MASK}."),
        ([KEY], f"{KEY}{KEY}", MASK + MASK),
        ([KEY, KEY[:10]], f"key {KEY}", f"key {MASK}"),  # the longer first: no tail is left
        (["abc"], "abc is too short to be a secret", "abc is too short to be a secret"),
        ([], f"nothing configured {KEY}", f"nothing configured {KEY}"),
    ],
)
def test_every_configured_secret_is_masked(secrets: list[str], text: str, expected: str) -> None:
    redact = Redactor(secrets)
    assert redact.text(text) == expected
    assert redact.bytes(text.encode()) == expected.encode()


def test_a_secret_quoted_inside_json_is_masked_in_its_escaped_form() -> None:
    secret = 'pa"ss\\word-1234'
    body = orjson.dumps({"error": {"message": f"bad password {secret}"}})
    masked = Redactor([secret]).bytes(body)
    assert orjson.loads(masked) == {"error": {"message": f"bad password {MASK}"}}


@pytest.mark.parametrize(
    ("secret", "written"),
    [
        ("Bearer sk-header-token-0123", "sk-header-token-0123"),  # without its scheme
        ("aws/secret+key=0123", "aws%2Fsecret%2Bkey%3D0123"),  # percent-encoded
        ("p%40ss-word-0123", "p@ss-word-0123"),  # a URL's password, decoded
    ],
)
def test_a_secret_is_masked_in_the_forms_it_travels_in(secret: str, written: str) -> None:
    assert Redactor([secret]).text(f"said {written}.") == f"said {MASK}."


def test_a_passphrase_is_not_split_into_words() -> None:
    assert Redactor(["correct horse battery"]).text("a horse") == "a horse"


def test_header_fields_are_masked_in_their_values_only() -> None:
    fields = [("x-echo", f"got {KEY}"), (KEY, "name"), ("x-request-id", "r-1")]
    assert Redactor([KEY]).fields(fields) == [
        ("x-echo", f"got {MASK}"),
        (KEY, "name"),
        ("x-request-id", "r-1"),
    ]
    assert Redactor([KEY]).fields([("x-request-id", "r-1")]) == [("x-request-id", "r-1")]
