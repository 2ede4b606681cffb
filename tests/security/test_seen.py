"""The table of texts already screened clean: remembered, bounded, oldest forgotten first."""

from __future__ import annotations

from edgeproxy.security.seen import CleanTexts


def test_a_text_added_is_known_and_another_is_not() -> None:
    clean = CleanTexts()
    clean.add("How do tides work?")
    assert "How do tides work?" in clean
    assert "How do tides work?!" not in clean


def test_the_oldest_text_is_forgotten_when_the_table_is_full() -> None:
    clean = CleanTexts(capacity=3)
    for text in ("one", "two", "three", "four"):
        clean.add(text)
    assert len(clean) == 3
    assert "one" not in clean
    assert all(text in clean for text in ("two", "three", "four"))


def test_a_table_of_no_capacity_remembers_nothing() -> None:
    clean = CleanTexts(capacity=0)
    clean.add("How do tides work?")
    assert "How do tides work?" not in clean
