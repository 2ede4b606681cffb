"""The blocklist: whole-word terms in any case, operators' own expressions, never the match."""

from __future__ import annotations

import pytest

from edgeproxy.security.blocklist import REDACTED, Blocklist

LIST = Blocklist(["Project Falcon", "c++", "secret"], [r"\bACME-\d{4}\b", r"(?i)^drop table"])


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("tell me about project falcon", "blocklist.term"),
        ("PROJECT FALCON status?", "blocklist.term"),
        ("is C++ faster", "blocklist.term"),
        ("keep it secret.", "blocklist.term"),
        ("ticket ACME-1234 is open", "blocklist.pattern[0]"),
        ("DROP TABLE users", "blocklist.pattern[1]"),
    ],
)
def test_a_listed_term_or_pattern_is_found_by_its_rule(text: str, rule: str) -> None:
    assert LIST.find(text) == rule


@pytest.mark.parametrize(
    "text",
    [
        "the secretary called",  # a term is a whole word
        "project falconry",
        "abc++ is not a language",
        "ACME-12345",
        "please do not drop table users",  # the pattern is anchored
        "",
    ],
)
def test_text_that_only_resembles_a_rule_passes(text: str) -> None:
    assert LIST.find(text) is None


def test_redaction_replaces_every_match_and_counts_them() -> None:
    text, count = LIST.redact("Secret plans for Project Falcon: see ACME-0001 and secret.")
    assert text == f"{REDACTED} plans for {REDACTED}: see {REDACTED} and {REDACTED}."
    assert count == 4


def test_an_empty_list_finds_nothing() -> None:
    empty = Blocklist([], [])
    assert empty.find("anything at all") is None
    assert empty.redact("anything") == ("anything", 0)
