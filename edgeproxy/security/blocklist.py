"""An operator's blocklist: terms (whole words, any case) and regular expressions, compiled once.

Terms are matched as whole words: "secret" does not match "secretary". A term that starts or
ends with a non-word character ("c++", "#internal") is matched where no word character touches
it. All terms go into one alternation; each pattern stays its own expression, so inline flags
and anchors mean what the operator wrote. What matched is never reported, only which rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[BLOCKED]"


class Blocklist:
    __slots__ = ("_patterns", "_terms")

    def __init__(self, terms: Iterable[str], patterns: Iterable[str]) -> None:
        words = sorted({t for t in terms if t.strip()}, key=len, reverse=True)
        self._terms = (
            re.compile(
                "(?<!\\w)(?:" + "|".join(re.escape(w) for w in words) + ")(?!\\w)", re.IGNORECASE
            )
            if words
            else None
        )
        self._patterns = tuple(
            (f"blocklist.pattern[{i}]", re.compile(p)) for i, p in enumerate(patterns)
        )

    def find(self, text: str) -> str | None:
        """The id of the first rule `text` breaks (`blocklist.term`, `blocklist.pattern[i]`)."""
        if self._terms is not None and self._terms.search(text):
            return "blocklist.term"
        for rule, pattern in self._patterns:
            if pattern.search(text):
                return rule
        return None

    def redact(self, text: str) -> tuple[str, int]:
        """`text` with every match replaced by a marker, and how many were replaced."""
        count = 0
        if self._terms is not None:
            text, count = self._terms.subn(REDACTED, text)
        for _, pattern in self._patterns:
            text, more = pattern.subn(REDACTED, text)
            count += more
        return text, count
