"""Screening answers: whole texts, and streams cut anywhere, with a bounded hold-back."""

from __future__ import annotations

import base64
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeproxy.security.pii import KINDS, Detector
from edgeproxy.security.pii_screen import HOLD_BACK, Screen, ScreenMode, StreamScreen

DETECTOR = Detector(KINDS)
KEY = "sk-ant-api03-Zx8_Yw7-Vu6Ts5Rq4Po3Nm2Lk1Jh0Gf9Ed8Cb7Az6"
PEM_BODY = "\n".join(
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun" for _ in range(50)
)
SHORT_PEM = (
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5\n"
    "-----END EC PRIVATE KEY-----"
)
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"


def jwt(claims: dict[str, str]) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{'S' * 43}"


def screened(text: str, mode: ScreenMode = "redact") -> tuple[str, dict[str, int]]:
    screen = Screen(DETECTOR, mode)
    return screen.screen(text), dict(screen.found)


def streamed(deltas: list[str], mode: ScreenMode = "redact") -> tuple[str, dict[str, int]]:
    screen = StreamScreen(DETECTOR, mode)
    out = "".join(screen.feed(delta) for delta in deltas) + screen.flush()
    return out, dict(screen.found)


def test_redact_mode_replaces_values_with_their_kind() -> None:
    text = f"Mail a@example.com, card 4111 1111 1111 1111, key {KEY}."
    assert screened(text) == (
        "Mail [REDACTED_EMAIL], card [REDACTED_CREDIT_CARD], key [REDACTED_SECRET].",
        {"email": 1, "credit_card": 1, "secret": 1},
    )


def test_monitor_mode_passes_text_through_and_counts() -> None:
    text = "Mail a@example.com or b@example.com from 10.0.0.1"
    assert screened(text, "monitor") == (text, {"email": 2, "ip": 1})


def test_clean_text_is_returned_as_it_is() -> None:
    assert screened("Nothing here but version 1.2.3.4 and 2024-01-15.") == (
        "Nothing here but version 1.2.3.4 and 2024-01-15.",
        {},
    )


# Texts whose values the stream screen must catch wherever the stream is cut.
STREAMED = [
    "Write to john.doe@example.com or call +1 (415) 555-2671 today.",
    "Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00 AND ssn 123-45-6789.",
    f"Use {KEY} and AKIAIOSFODNN7EXAMPLE on 10.0.0.1. fe80::1%eth0 is the peer",
    f"Bearer {jwt({'sub': '1234567890'})} expires soon",
    f"{SHORT_PEM}\nok",
    "call me at 4155552671, my ssn 123456789, version 1.2.3.4 [x] (",
    "Phones: 555-123-4567 555-987-6543 and 020 7946 0958.",
    "Plain prose, 12 apples and (some) brackets [1] with no values at all.",
]


@pytest.mark.parametrize("text", STREAMED)
def test_a_stream_cut_anywhere_in_two_screens_as_the_whole_text(text: str) -> None:
    whole = screened(text)
    for cut in range(len(text) + 1):
        assert streamed([text[:cut], text[cut:]]) == whole, cut


@pytest.mark.parametrize("text", STREAMED)
def test_a_stream_one_character_at_a_time_screens_as_the_whole_text(text: str) -> None:
    assert streamed(list(text)) == screened(text)


VALUES = [
    "a@example.com",
    "jane.doe+x@mail.example.org",
    "+1 (415) 555-2671",
    "020 7946 0958",
    "4111 1111 1111 1111",
    "DE89 3704 0044 0532 0130 00",
    "123-45-6789",
    "192.168.1.20",
    "2001:db8::1",
    KEY,
    "AKIAIOSFODNN7EXAMPLE",
    jwt({"sub": "x"}),
    SHORT_PEM,
]
# What stands between values in real text, including the words that decide ambiguous ones.
SEPARATORS = [
    " ",
    ", ",
    ". ",
    "\n",
    " (",
    ") ",
    ": ",
    " [",
    "] ",
    " the ",
    " call ",
    " ssn ",
    " é ",
]
# Anything, glued to values with no separator at all.
FILLER = ["x", "2024", "v", "é", "-", ":", "(", "[", "ABC ", "+", "0", "version ", "call "]


def split(text: str, cuts: list[int]) -> list[str]:
    cuts = sorted(cuts)
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.sampled_from(SEPARATORS), st.sampled_from(VALUES)), max_size=12),
    data=st.data(),
)
def test_any_stream_of_values_in_text_screens_as_the_whole_text(
    pairs: list[tuple[str, str]], data: st.DataObject
) -> None:
    text = "".join(separator + value for separator, value in pairs)
    deltas = split(text, data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    assert streamed(deltas) == screened(text)
    assert streamed(deltas, "monitor") == (text, screened(text)[1])


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.sampled_from(VALUES + FILLER), max_size=14), data=st.data())
def test_values_glued_together_never_leak_what_the_whole_text_hides(
    pieces: list[str], data: st.DataObject
) -> None:
    """Glued with no separator, values run into one another and a stream may mark them in
    more pieces than the whole text does, or, past HOLD_BACK, drop more; never less."""
    text = "".join(pieces)
    deltas = split(text, data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    whole, _ = screened(text)
    out, _ = streamed(deltas)
    assert [v for v in VALUES if v in pieces and v not in whole and v in out] == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=30))
def test_held_back_text_never_exceeds_the_bound(deltas: list[str]) -> None:
    screen = StreamScreen(Detector([]), "redact")  # nothing to find: output is input
    fed = released = ""
    for delta in deltas:
        fed += delta
        released += screen.feed(delta)
        assert fed.startswith(released)
        assert len(fed) - len(released) <= HOLD_BACK
    assert released + screen.flush() == fed


def test_held_back_text_with_values_never_exceeds_the_bound() -> None:
    rng = random.Random(5)
    text = " ".join(rng.choice([*VALUES, "word", "x" * 300, PEM]) for _ in range(200))
    screen = StreamScreen(DETECTOR, "monitor")
    fed = 0
    for start in range(0, len(text), 7):
        screen.feed(text[start : start + 7])
        fed += len(text[start : start + 7])
        assert len(screen._held) <= HOLD_BACK  # what it would hold in redact mode


def test_prose_is_released_up_to_its_last_word() -> None:
    screen = StreamScreen(DETECTOR, "redact")
    assert screen.feed("Hello there, how are you? ") == "Hello there, how are you? "
    assert screen.feed("Fine") == ""  # could still become `Fine.Co@example.com`
    assert screen.feed(", thanks.\n") == "Fine, thanks.\n"


@pytest.mark.parametrize("step", [1, 3, 50, 1000])
def test_a_token_longer_than_the_bound_is_redacted_without_holding_it(step: int) -> None:
    token = jwt({"sub": "u" * 600})
    assert len(token) > HOLD_BACK
    text = f"token {token} done."
    deltas = [text[i : i + step] for i in range(0, len(text), step)]
    assert streamed(deltas) == ("token [REDACTED_SECRET] done.", {"secret": 1})
    assert screened(text) == ("token [REDACTED_SECRET] done.", {"secret": 1})


@pytest.mark.parametrize("step", [1, 5, 64, 5000])
def test_a_private_key_is_dropped_from_its_header_to_its_footer(step: int) -> None:
    text = f"Here:\n{PEM}\nKeep it safe."
    deltas = [text[i : i + step] for i in range(0, len(text), step)]
    out, found = streamed(deltas)
    assert out == "Here:\n[REDACTED_SECRET]\nKeep it safe."
    assert found == {"secret": 1}


def test_a_private_key_without_footer_drops_the_rest_of_the_stream() -> None:
    text = f"Here:\n-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\nand then the model stopped"
    assert streamed([text[i : i + 9] for i in range(0, len(text), 9)]) == (
        "Here:\n[REDACTED_SECRET]",
        {"secret": 1},
    )


def test_a_key_split_in_two_halves_is_caught() -> None:
    half = len(KEY) // 2
    out, found = streamed(["the key is ", KEY[:half], KEY[half:], " ok"])
    assert out == "the key is [REDACTED_SECRET] ok"
    assert found == {"secret": 1}


def test_monitor_mode_releases_every_delta_at_once() -> None:
    screen = StreamScreen(DETECTOR, "monitor")
    assert screen.feed("mail a@exa") == "mail a@exa"
    assert screen.feed("mple.com now") == "mple.com now"
    assert screen.flush() == ""
    assert screen.found == {"email": 1}
