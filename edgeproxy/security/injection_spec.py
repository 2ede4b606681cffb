"""The shape of one prompt-injection rule before compilation, shared by the rule modules
(`injection_rules` for English, `injection_multilingual` for other languages)."""

from __future__ import annotations

from typing import NamedTuple


class RuleSpec(NamedTuple):
    """A rule before compilation: its id, its weight, its pattern's source, and its anchors:
    strings one of which every match contains, checked first (a substring test costs far less
    than a search), so that a rule runs only on texts that could match it."""

    id: str
    weight: float
    pattern: str
    anchors: tuple[str, ...]


def any_of(*words: str) -> str:
    """A non-capturing alternation of regex fragments."""
    return "(?:" + "|".join(words) + ")"
