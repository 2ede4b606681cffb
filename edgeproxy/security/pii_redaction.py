"""Personal data and secrets out of a request, back into its answer: placeholders.

`Redaction` (one per request) replaces each value the detector finds with a placeholder and
keeps the mapping; `restore` puts the originals back into the answer, and a `StreamRestorer`
(one per text channel of a streamed answer) does it delta by delta.

The placeholder is the kind's label in capitals and a number, in square brackets: `[EMAIL_1]`,
`[PHONE_2]`, `[CREDIT_CARD_1]`, `[IBAN_1]`, `[SSN_1]`, `[IP_1]`, `[SECRET_1]`. Models copy such
a slot through unchanged (it reads as a template variable, and its capitals and digits are
not words they would inflect or translate), while prose and code seldom contain one: markdown
links have text, not capitals, inside their brackets. The same value gets the same placeholder
throughout a request and different values different ones, so the model can still tell who is
who. Only placeholders this request made are restored; one the model invents, or a number
whose placeholder was already in the text being redacted, is never used, so literal text
such as `[EMAIL_1]` in a prompt comes back as it was.

A text that is JSON source (tool-call arguments) is redacted and restored with JSON escapes:
the mapping holds the value itself, which a private key's line breaks make differ from its
escaped form.
"""

from __future__ import annotations

import re
from collections import Counter

import orjson

from edgeproxy.security.pii import LABELS, Detector

PLACEHOLDER = re.compile(r"\[(?:" + "|".join(LABELS.values()) + r")_[1-9][0-9]{0,5}\]")


class Redaction:
    """The placeholders of one request. `redact` each of its texts, then `restore` the answer;
    the mapping must be complete (every text redacted) before the answer is restored."""

    __slots__ = ("_detector", "_escaped", "_originals", "_placeholders", "kinds_found")

    def __init__(self, detector: Detector) -> None:
        self._detector = detector
        self._placeholders: dict[str, str] = {}  # value -> placeholder
        self._originals: dict[str, str] = {}  # placeholder -> value
        self._escaped: dict[str, str] = {}  # placeholder -> value as JSON string content
        # For the audit: how many distinct values of each kind were replaced, never which.
        self.kinds_found: Counter[str] = Counter()

    @property
    def count(self) -> int:
        """How many distinct values were replaced."""
        return len(self._originals)

    def __bool__(self) -> bool:
        return bool(self._originals)

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(self._originals)

    def redact(self, text: str, json: bool = False) -> str:
        matches = self._detector.find(text)
        if not matches:
            return text
        parts: list[str] = []
        done = 0
        for match in matches:
            value = text[match.start : match.end]
            parts += (text[done : match.start], self._placeholder(match.kind, value, json, text))
            done = match.end
        parts.append(text[done:])
        return "".join(parts)

    def restore(self, text: str, json: bool = False) -> str:
        if not self._originals or "[" not in text:
            return text
        originals = self._escaped if json else self._originals
        return PLACEHOLDER.sub(lambda m: originals.get(m.group(), m.group()), text)

    def _placeholder(self, kind: str, value: str, json: bool, text: str) -> str:
        if json:
            value = _unescaped(value)
        known = self._placeholders.get(value)
        if known is not None:
            return known
        label = LABELS[kind]
        number = self.kinds_found[kind] + 1
        while f"[{label}_{number}]" in text or f"[{label}_{number}]" in self._originals:
            number += 1
        placeholder = f"[{label}_{number}]"
        self.kinds_found[kind] += 1
        self._placeholders[value] = placeholder
        self._originals[placeholder] = value
        self._escaped[placeholder] = orjson.dumps(value).decode()[1:-1]
        return placeholder


def _unescaped(source: str) -> str:
    """A value found inside a JSON string, as the string holds it."""
    try:
        value = orjson.loads(f'"{source}"')
    except orjson.JSONDecodeError:
        return source
    return value if isinstance(value, str) else source


class StreamRestorer:
    """Restores one text channel of a streamed answer, delta by delta.

    `feed` returns what can be sent now. It holds back only a trailing fragment that is the
    start of one of this request's placeholders (`[`, `[EMA`, `[EMAIL_1`…), so at most the
    longest placeholder's length less one character, and releases it as soon as the next
    delta shows it is not one. `flush` at the end of the channel returns what is held.
    """

    __slots__ = ("_held", "_json", "_longest", "_prefixes", "_redaction")

    def __init__(self, redaction: Redaction, json: bool = False) -> None:
        self._redaction = redaction
        self._json = json
        names = redaction.placeholders
        self._prefixes = frozenset(name[:end] for name in names for end in range(1, len(name)))
        self._longest = max(map(len, names), default=0)
        self._held = ""

    def feed(self, delta: str) -> str:
        if not self._prefixes:
            return delta
        text = self._held + delta
        cut = self._fragment_start(text)
        self._held = text[cut:]
        return self._redaction.restore(text[:cut], self._json)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held

    @property
    def holding(self) -> bool:
        """Whether it holds the start of a placeholder back."""
        return bool(self._held)

    def _fragment_start(self, text: str) -> int:
        """Where a trailing start of a placeholder begins, or the end of `text`. Placeholders
        hold no `[` after their first character, so only the last `[` can begin one."""
        start = text.rfind("[", max(0, len(text) - self._longest + 1))
        return start if start != -1 and text[start:] in self._prefixes else len(text)
