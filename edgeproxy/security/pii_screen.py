"""Screening answers for personal data and secrets, whole or streamed.

In `redact` mode each value found is replaced by `[REDACTED_<KIND>]` (`[REDACTED_EMAIL]`,
`[REDACTED_SECRET]`); in `monitor` mode the text goes through unchanged. Both count what they
found by kind, for the audit, which never sees the values. Screen before restoring a request's
placeholders (`pii_redaction`): a placeholder is not personal data, while the values it
stands for, which the client sent itself, would be.

`StreamScreen` screens one text channel of a streamed answer. A value can be cut anywhere
between deltas (a key in two halves), so the screen holds back the end of what it has seen
while that end could still be, or become, part of a value: the trailing run of characters
that occur in values (`_TAIL`), and any value found that reaches into it. What it holds is
bounded by `HOLD_BACK` characters, longer than every value of a bounded kind. Two cases need
more and never hold more:
- a private key's header starts redaction at once, and everything after it is dropped up to
  its footer (or the end of the stream, failing closed): its body is kilobytes, and the header
  is enough to know;
- a token longer than `HOLD_BACK` characters that is already a match (a JWT, a long key) is
  redacted at that point, and the rest of the token is dropped as it arrives.
Up to those two cases, a stream cut at any points screens exactly as the whole text would.
Values glued to one another with no separator at all may be marked in more pieces than the
whole text marks them, never in fewer characters: what the whole text hides, a stream hides.
In monitor mode the same machinery runs to count, and every delta is passed on at once.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Final, Literal

from edgeproxy.security.pii import CONTEXT_CHARS, LABELS, PEM_END, Detector, Match

ScreenMode = Literal["redact", "monitor"]
REDACTED: Final = {kind: f"[REDACTED_{label}]" for kind, label in LABELS.items()}
HOLD_BACK: Final = 256  # characters: the most a StreamScreen holds back
# Text already released that is kept to read the next deltas in context: the words before a
# candidate that decide it, and the character before it that a pattern's lookbehind checks.
_CONTEXT: Final = CONTEXT_CHARS + 8
# The end of the text that may still grow into a value: characters of e-mail addresses (any
# letter, as their local parts and domains may hold), keys, tokens and addresses, and before
# them groups of digits or capitals separated by spaces (`+1 (555) 123`, `4111 1111`,
# `DE89 3704`, `-----BEGIN RSA`). Matched backwards, on the reversed end of the text, so one
# match finds it. Scripts written without spaces are held up to their punctuation, or the bound.
_TAIL = re.compile(r"[\w.%+@:/=()\-]*(?:[ ]{1,2}[0-9A-Z+().\-/]+)*")
_WORD = re.compile(r"\w+")
_PEM_END = re.compile(PEM_END)
_PEM_END_LONGEST = 64  # characters of a footer split across deltas, kept while dropping a key
# What continues a value cut off at `HOLD_BACK`, dropped until the value ends.
_JWT_REST = re.compile(r"[A-Za-z0-9_.\-]*")
_KEY_REST = re.compile(r"[A-Za-z0-9_\-]*")
_EMAIL_REST = re.compile(r"[\w.%+@\-]*")
_NUMBER_REST = re.compile(r"[0-9A-Z .()\-]*")


class Screen:
    """Screens the whole texts of one answer (`screen` each), and counts what it found."""

    __slots__ = ("_detector", "_redact", "found")

    def __init__(self, detector: Detector, mode: ScreenMode) -> None:
        self._detector = detector
        self._redact = mode == "redact"
        self.found: Counter[str] = Counter()

    def screen(self, text: str) -> str:
        matches = self._detector.find(text)
        self.found.update(match.kind for match in matches)
        return _redacted(text, matches) if matches and self._redact else text


def _redacted(text: str, matches: list[Match], start: int = 0, end: int | None = None) -> str:
    """`text[start:end]` with each of `matches` (all inside it) replaced."""
    parts: list[str] = []
    done = start
    for match in matches:
        parts += (text[done : match.start], REDACTED[match.kind])
        done = match.end
    parts.append(text[done:end])
    return "".join(parts)


class StreamScreen:
    """Screens one text channel of a streamed answer: `feed` each delta, `flush` at its end.
    `found` counts the values found so far, by kind."""

    __slots__ = ("_context", "_detector", "_dropping", "_held", "_in_key", "_redact", "found")

    def __init__(self, detector: Detector, mode: ScreenMode) -> None:
        self._detector = detector
        self._redact = mode == "redact"
        self._context = ""  # the end of the text released so far, as it was
        self._held = ""
        self._dropping: re.Pattern[str] | None = None  # what continues a value being dropped
        self._in_key = False  # dropping a private key's body, up to its footer
        self.found: Counter[str] = Counter()

    def feed(self, delta: str) -> str:
        if self._lengthens_tail(delta):
            self._held += delta
            return "" if self._redact else delta
        released = self._screened(delta, final=False)
        return released if self._redact else delta

    def _lengthens_tail(self, delta: str) -> bool:
        """Whether `delta` only lengthens the word being held: the tail then starts where it
        did, so screening would release nothing yet, and is left for a delta that can."""
        held = self._held
        return (
            len(held) + len(delta) <= HOLD_BACK
            and _WORD.fullmatch(delta) is not None
            and held[-1:].isalnum()
            and not (self._dropping or self._in_key)
        )

    def flush(self) -> str:
        released = self._screened("", final=True)
        self._held = ""
        self._dropping = None
        self._in_key = False
        return released if self._redact else ""

    def _screened(self, delta: str, final: bool) -> str:
        out: list[str] = []
        while True:
            if self._dropping or self._in_key:
                delta = self._drop(delta)
                if self._dropping or self._in_key:
                    return "".join(out)
            delta = self._release(self._held + delta, final, out)
            if not delta:
                return "".join(out)

    def _release(self, pending: str, final: bool, out: list[str]) -> str:
        """Appends to `out` what of `pending` can no longer change, screened, and holds back
        the rest. Returns what follows a value that has started to be dropped."""
        text = self._context + pending
        base = len(self._context)
        # A value that began in released text (glued to a value before it) is redacted from
        # here on: what was released is gone, the rest need not be.
        matches = [
            m if m.start >= base else Match(m.kind, base, m.end)
            for m in self._detector.find(text)
            if m.end > base
        ]
        for match in matches:
            if not final and _is_open_key(text, match):
                return self._start_dropping(text, base, matches, match, out)
        cut = len(text) if final else self._stable_end(text, base, matches)
        forced = len(text) - HOLD_BACK
        if cut < forced:  # holding more than the bound: a value that long is being cut
            for match in matches:
                if match.start < forced < match.end:
                    return self._start_dropping(text, base, matches, match, out)
            cut = forced
        settled = [m for m in matches if m.end <= cut]
        self.found.update(m.kind for m in settled)
        out.append(_redacted(text, settled, base, cut))
        self._context = text[max(0, cut - _CONTEXT) : cut]
        self._held = text[cut:]
        return ""

    def _stable_end(self, text: str, base: int, matches: list[Match]) -> int:
        """Where the part of `text` that may still change begins: its tail, or the start of a
        value that reaches into the tail."""
        window = text[max(base, len(text) - HOLD_BACK) :]
        cut = len(text) - _prefix_length(_TAIL, window[::-1])
        for match in matches:
            if match.end > cut:
                return min(cut, match.start)
        return cut

    def _start_dropping(
        self, text: str, base: int, matches: list[Match], value: Match, out: list[str]
    ) -> str:
        before = [m for m in matches if m.end <= value.start]
        self.found.update(m.kind for m in before)
        self.found[value.kind] += 1
        out += (_redacted(text, before, base, value.start), REDACTED[value.kind])
        rest = _rest_of(text[value.start : value.end], value.kind)
        self._dropping, self._in_key = rest, rest is None
        self._context = text[max(0, value.end - _CONTEXT) : value.end]
        self._held = ""
        return text[value.end :]

    def _drop(self, delta: str) -> str:
        """Drops what continues the value being dropped; returns what follows it."""
        if self._in_key:
            text = self._held + delta
            footer = _PEM_END.search(text)
            if footer is None:
                self._held = text[-_PEM_END_LONGEST:]
                return ""
            end = footer.end()
        else:
            text = delta
            end = _prefix_length(self._dropping, text)
            if end == len(text):
                self._context = (self._context + text)[-_CONTEXT:]
                return ""
        self._context = text[max(0, end - _CONTEXT) : end]
        self._held = ""
        self._dropping, self._in_key = None, False
        return text[end:]


def _prefix_length(pattern: re.Pattern[str] | None, text: str) -> int:
    """How much of the start of `text` the pattern matches."""
    match = pattern.match(text) if pattern is not None else None
    return match.end() if match is not None else 0


def _is_open_key(text: str, match: Match) -> bool:
    """A private key whose footer has not arrived yet."""
    if match.kind != "secret" or not text.startswith("-----BEGIN", match.start):
        return False
    return _PEM_END.search(text, match.start, match.end) is None


def _rest_of(value: str, kind: str) -> re.Pattern[str] | None:
    """What continues a value of `kind` that has started with `value`; None for a private key,
    whose body runs to its footer."""
    if kind == "secret":
        if value.startswith("-----BEGIN"):
            return None
        return _JWT_REST if value.startswith("eyJ") else _KEY_REST
    return _EMAIL_REST if kind == "email" else _NUMBER_REST
