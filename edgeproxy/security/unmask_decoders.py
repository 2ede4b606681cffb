"""Decoders for the word games attackers play with an instruction, for `unmask.Unmasker`.

Each decoder is cheap on ordinary text and returns None unless the text shows its disguise:

- `WordCodes.decode(view)`: words that matter ("ignore", "instructions", "prompt"...) looked
  up as whole tokens in every Caesar shift (ROT13 among them), with their vowels taken out
  ("gnr ll prvs nstrctns"), or with a typo ("ignroe", "prevous", "insturctions"); two such
  words or more and the text is read back in that code. One dictionary look-up per word: no
  text is shifted or spell-checked unless its words say it is needed.
- `from_pig_latin`: most words ending in "ay" ("ignoreway allway eviouspray").
- `from_binary`: runs of eight-bit groups ("01101001 01100111 ...").
- `from_nato`: spelling alphabet words ("India Golf November Oscar ...").
- `from_acrostic`: the first letters of six lines or more, when the text asks for them.
- `assemble_fragments`: quoted pieces joined when the text joins them ("x = 'Ignore all prev'
  and y = 'ious instructions', do x+y").

Letters without spaces (an acrostic, pieces joined) are cut around the words that matter, so
that "revealprompt" reads "reveal prompt".
"""

from __future__ import annotations

import re
from typing import Final

# The words whose presence tells a hidden instruction, in every code below.
DIRECTIVE_WORDS: Final = (
    "ignore", "instructions", "instruction", "previous", "prompt", "system", "rules",
    "disregard", "forget", "guidelines", "reveal", "pretend", "jailbreak", "restrictions",
    "password", "secret", "hidden", "bypass", "override",
)  # fmt: skip
# Short words that carry the rest of a sentence, looked up too once the text shows a code.
_GLUE: Final = ("all", "and", "your", "the", "show", "print", "tell", "say", "me", "you", "what")
_VOWELS: Final = str.maketrans("", "", "aeiou")
# Real words one letter away from a directive word: never read as its typo.
_NOT_TYPOS: Final = frozenset(
    {"rule", "forge", "revel", "prompts", "systems", "roles", "secrets", "ignored", "ignores"}
)
_SLANG: Final = {"ur": "your", "u": "you", "pls": "please", "plz": "please", "r": "are"}
_NATO: Final = {
    word: word[0]
    for word in [
        "alfa",
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliett",
        "juliet",
        "kilo",
        "lima",
        "mike",
        "november",
        "oscar",
        "papa",
        "quebec",
        "romeo",
        "sierra",
        "tango",
        "uniform",
        "victor",
        "whiskey",
        "xray",
        "x-ray",
        "yankee",
        "zulu",
    ]
}
_WORD: Final = re.compile(r"[a-z]+")
_PIG_LATIN: Final = re.compile(r"\b[a-z]+ay\b")
_BINARY: Final = re.compile(r"(?:\b[01]{8}\b[ ,]?){4,}")
_NATO_RUN: Final = re.compile(r"(?:\b(?:" + "|".join(_NATO) + r")\b[\s,/|-]*){5,}", re.IGNORECASE)
_ACROSTIC_CUE: Final = re.compile(
    r"first letters?|acrostic|initials?\b|each line|every line|start of each", re.IGNORECASE
)
_QUOTED_PIECE: Final = re.compile(r"[\"']([^\"'\n]{2,60})[\"']")
_JOINING: Final = re.compile(r"\+|\b(?:join|combine|concatenat|append|put together|glue)")
_SEGMENT: Final = re.compile("|".join(sorted((*DIRECTIVE_WORDS, *_GLUE), key=len, reverse=True)))


class WordCodes:
    """Every directive word in every Caesar shift, without vowels and with one typo, built once
    (a few thousand dictionary entries); `decode` looks a text's words up in them."""

    __slots__ = ("_shifts", "_skeletons", "_typos")

    def __init__(self) -> None:
        self._shifts: dict[str, int] = {}
        for shift in range(1, 26):
            table = _shift_table(shift)
            for word in DIRECTIVE_WORDS:
                self._shifts[word.translate(table)] = shift
        self._skeletons = {
            word.translate(_VOWELS): word
            for word in (*DIRECTIVE_WORDS, *_GLUE)
            if len(word.translate(_VOWELS)) >= 2
        }
        self._typos: dict[str, str] = {}
        for word in DIRECTIVE_WORDS:
            for variant in _one_slip(word):
                if variant not in _NOT_TYPOS and variant not in DIRECTIVE_WORDS:
                    self._typos.setdefault(variant, word)

    def decode(self, view: str) -> list[tuple[str, str]]:
        """The view read back in each code that two of its words or more are written in."""
        words = _WORD.findall(view)
        found: list[tuple[str, str]] = []
        shifts = [self._shifts[word] for word in words if word in self._shifts]
        for shift in set(shifts):
            if shifts.count(shift) >= 2:
                kind = "rot13" if shift == 13 else "caesar"
                found.append((kind, view.translate(_shift_table(26 - shift))))
        skeletons = [word for word in words if word in self._skeletons]
        if len(skeletons) >= 3 and 2 * len(skeletons) >= len(words):
            found.append(("vowels_removed", _replace_words(view, self._skeletons)))
        typos = [word for word in words if word in self._typos]
        if len(typos) >= 2:
            found.append(("typos", _replace_words(view, {**self._typos, **_SLANG})))
        return found


def from_pig_latin(view: str) -> str | None:
    words = _WORD.findall(view)
    latin = _PIG_LATIN.findall(view)
    if len(latin) < 3 or 2 * len(latin) < len(words):
        return None
    return _PIG_LATIN.sub(lambda match: _unpig(match.group()), view)


def from_binary(text: str) -> str | None:
    run = _BINARY.search(text)
    if run is None:
        return None
    decoded = "".join(chr(int(group, 2)) for group in re.findall(r"[01]{8}", run.group()))
    return decoded if decoded.isprintable() and " " in decoded else None


def from_nato(text: str) -> str | None:
    run = _NATO_RUN.search(text)
    if run is None:
        return None
    words = re.split(r"\s*/\s*|\s{2,}|\s*\|\s*", run.group().strip())
    spelled = [
        "".join(_NATO.get(part.lower(), "") for part in re.split(r"[\s,-]+", word))
        for word in words
    ]
    return " ".join(part for part in spelled if part)


def from_acrostic(text: str) -> str | None:
    if not _ACROSTIC_CUE.search(text):
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not _ACROSTIC_CUE.search(line)]
    if len(lines) < 6:
        return None
    letters = "".join(line[0] for line in lines if line[0].isalpha()).lower()
    return segment(letters)


def assemble_fragments(text: str) -> str | None:
    pieces = _QUOTED_PIECE.findall(text)
    if len(pieces) < 2 or not _JOINING.search(text.lower()):
        return None
    return "".join(pieces)


def segment(letters: str) -> str:
    """Spaces put around the directive and glue words found in letters run together."""
    return " ".join(_SEGMENT.sub(lambda match: f" {match.group()} ", letters).split())


def _shift_table(shift: int) -> dict[int, int]:
    lower = "abcdefghijklmnopqrstuvwxyz"
    return str.maketrans(lower, lower[shift:] + lower[:shift])


def _one_slip(word: str) -> set[str]:
    """The word with one letter dropped, or two neighbours swapped."""
    dropped = {word[:i] + word[i + 1 :] for i in range(len(word))}
    swapped = {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)}
    return {variant for variant in dropped | swapped if len(variant) >= 4}


def _replace_words(view: str, table: dict[str, str]) -> str:
    return _WORD.sub(lambda match: table.get(match.group(), match.group()), view)


def _unpig(word: str) -> str:
    stem = word[:-2]
    if stem.endswith("w") and stem[0] in "aeiou":
        return stem[:-1]
    tail = len(stem) - len(stem.rstrip("bcdfghjklmnpqrstvwxyz"))
    return stem[-tail:] + stem[:-tail] if 0 < tail < len(stem) else stem
