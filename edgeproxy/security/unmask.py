"""What a text says once its disguises are taken off: the view the injection rules read.

Attackers dress an instruction so that a pattern written for "ignore previous instructions"
misses it: fullwidth or mathematical letters, zero-width characters inside words, Cyrillic
letters that look Latin, leetspeak, s p a c e d or d.o.t.t.e.d letters, HTML entities, and
payloads in base64, hex, URL-encoding, Morse, ROT13, reversed text or invisible Unicode tag
characters. `Unmasker.unmask(text)` undoes the cheap ones and returns:

- `view`: the text NFKC-normalised, without format characters, case-folded, Latin accents
  removed (so "instrucciónes" reads "instrucciones"), typographic quotes made plain, Cyrillic
  and Greek look-alikes mapped to Latin inside words that mix scripts (Russian words stay
  Russian), leetspeak mapped inside words that mix letters and digits (not "base64", "4th" or
  "10mb"), spaced and dotted letters joined, HTML entities and "\\n" escapes decoded, runs of
  spaces collapsed (line breaks kept, one per run, since rules read line starts).
- `payloads`: decoded texts, each folded the same way and named by how it was hidden
  (`base64`, `hex`, `urlencoded`, `morse`, `binary`, `nato`, `acrostic`, `split_payload`,
  `rot13`, `caesar`, `vowels_removed`, `typos`, `pig_latin`, `reversed`, `split_words`,
  `leetspeak`, `unicode_tags`), for the rules to read on their own. The word games
  (`unmask_decoders`) are tried only when words that matter ("ignore", "instructions",
  "prompt"...) appear in that form, words cut by hyphens only when most words are, leetspeak is
  read again with 1 as "l" only when it has a 1: ordinary text pays little for them.
- `signals`: disguises seen, whatever they hid (`unicode_tags`, `invisible_chars`,
  `homoglyphs`, `leetspeak`, `spaced_letters`).

The work is bounded: a text longer than `2 * window` characters is read as its first and last
`window` characters (instructions hidden in the middle of a huge document are not seen), at
most `max_payloads` payloads of at most `max_payload_chars` each are decoded, and payloads are
decoded inside payloads one level deep. Pure: no I/O, everything compiled at construction.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass
from typing import Final

from edgeproxy.security.unmask_decoders import (
    WordCodes,
    assemble_fragments,
    from_acrostic,
    from_binary,
    from_nato,
    from_pig_latin,
)

# Format characters and fillers that render as nothing: zero-width spaces and joiners, soft
# hyphens, bidi controls, word joiners, variation selectors, the BOM, Hangul fillers, tags.
_INVISIBLE: Final = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e0fff"
)
_TAG_RUN: Final = "[\U000e0020-\U000e007e]{8,}"
_QUOTES: Final = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2033": '"',
    }
)
# Cyrillic and Greek letters drawn like Latin ones (lower case: the map runs after case-fold).
_CONFUSABLES: Final = str.maketrans(
    {
        "\u0430": "a",
        "\u0432": "b",
        "\u0441": "c",
        "\u0435": "e",
        "\u0451": "e",
        "\u04bb": "h",
        "\u0456": "i",
        "\u0457": "i",
        "\u0458": "j",
        "\u043a": "k",
        "\u043c": "m",
        "\u043d": "h",
        "\u043e": "o",
        "\u0440": "p",
        "\u0455": "s",
        "\u0442": "t",
        "\u0443": "y",
        "\u0445": "x",
        "\u0501": "d",
        "\u051b": "q",
        "\u051d": "w",
        "\u03b1": "a",
        "\u03b2": "b",
        "\u03b5": "e",
        "\u03b7": "n",
        "\u03b9": "i",
        "\u03ba": "k",
        "\u03bd": "v",
        "\u03bf": "o",
        "\u03c1": "p",
        "\u03c4": "t",
        "\u03c5": "u",
        "\u03c7": "x",
        "\u03c9": "w",
    }
)
_LEET_L: Final = str.maketrans(
    {
        "0": "o",
        "1": "l",
        "2": "z",
        "3": "e",
        "4": "a",
        "5": "s",
        "6": "g",
        "7": "t",
        "8": "b",
        "9": "g",
    }
)
_LEET: Final = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "2": "z",
        "3": "e",
        "4": "a",
        "5": "s",
        "6": "g",
        "7": "t",
        "8": "b",
        "9": "g",
    }
)
# Units, ordinals and versions written with digits first ("4th", "10mb", "64bit") are words,
# not leetspeak; so are names with trailing digits ("base64", "sha256", "python3") and
# numeronyms ("e2e", "k8s", "i18n").
_NOT_LEET: Final = re.compile(
    r"\d+(?:st|nd|rd|th|[kmgtp]?b|[kmg]?hz|ms|px|em|rem|pt|[smhdwy]|min|am|pm|kg|km|cm|mm|ml"
    r"|bit|bits|fps|[kmg]bps|k|x|p|v|gb|d)|[a-z]+\d+|[a-z]\d+[a-z]|[0-9a-f]{12,}"
)
_REVEALING_WORDS: Final = [
    "ignore",
    "instructions",
    "instruction",
    "previous",
    "prompt",
    "system",
    "rules",
    "disregard",
    "forget",
    "guidelines",
    "reveal",
    "pretend",
    "jailbreak",
    "restrictions",
    "password",
    "secret",
    "hidden",
]
_REVERSED_ANCHORS: Final = re.compile(
    r"\b(?:" + "|".join(word[::-1] for word in _REVEALING_WORDS) + r")\b"
)


# Vowel points and cantillation of Hebrew, harakat and the tatweel of Arabic: optional marks
# that a writer may add or leave out, and that an attacker can sprinkle to break a word.
_SEMITIC_MARKS: Final = (
    *range(0x0591, 0x05BE),
    0x05BF,
    0x05C1,
    0x05C2,
    0x05C4,
    0x05C5,
    0x05C7,
    *range(0x064B, 0x0660),
    0x0670,
    0x0640,
)


def _latin_accents() -> dict[int, str]:
    """Latin letters with marks to their base letters (é → e, ç → c, ơ → o), other scripts
    untouched: stripping marks from Cyrillic or Devanagari would change their words; only the
    optional vowel marks of Hebrew and Arabic are dropped."""
    table: dict[int, str] = dict.fromkeys(_SEMITIC_MARKS, "")
    for code in (*range(0xC0, 0x250), *range(0x1E00, 0x1F00)):
        base = unicodedata.normalize("NFKD", chr(code))
        letters = "".join(c for c in base if not unicodedata.combining(c))
        if letters and letters != chr(code) and letters.isascii():
            table[code] = letters
    return table


@dataclass(frozen=True, slots=True)
class Unmasked:
    """The folded text, what was decoded out of it, and which disguises were seen."""

    view: str
    payloads: tuple[tuple[str, str], ...]
    signals: frozenset[str]


class Unmasker:
    """Folds texts for the injection rules; built once, its patterns compiled here."""

    __slots__ = (
        "_accents",
        "_base64",
        "_entity",
        "_hex",
        "_hyphenated",
        "_invisible",
        "_invisible_in_words",
        "_invisible_spaced",
        "_leet_token",
        "_markup_at_words",
        "_markup_in_words",
        "_max_payload_chars",
        "_max_payloads",
        "_mixed_script",
        "_morse",
        "_newlines",
        "_non_latin",
        "_spaced",
        "_spaces",
        "_tag_run",
        "_url_escape",
        "_window",
        "_word_codes",
    )

    def __init__(
        self, *, window: int = 16_384, max_payloads: int = 8, max_payload_chars: int = 4096
    ) -> None:
        if window < 1 or max_payloads < 0 or max_payload_chars < 16:
            raise ValueError("window must be positive, max_payload_chars at least 16")
        self._window = window
        self._max_payloads = max_payloads
        self._max_payload_chars = max_payload_chars
        self._accents = _latin_accents()
        self._tag_run = re.compile(_TAG_RUN)
        self._invisible = re.compile(f"[{_INVISIBLE}]+")
        self._invisible_spaced = re.compile(f"[{_INVISIBLE}]+ [{_INVISIBLE}]+")
        self._invisible_in_words = re.compile(f"(?<=[A-Za-z])[{_INVISIBLE}]+(?=[A-Za-z])")
        self._entity = re.compile(r"&(?:#\d{2,7}|#x[0-9a-fA-F]{2,6}|[a-zA-Z]{2,8});")
        self._base64 = re.compile(r"(?<![\w+/=-])[A-Za-z0-9+/_-]{16,}={0,2}(?![\w+/=-])")
        self._hex = re.compile(r"(?<![0-9a-fA-F])(?:0x)?((?:[0-9a-fA-F]{2}[ :]?){8,})")
        self._url_escape = re.compile(r"%[0-9a-fA-F]{2}")
        self._morse = re.compile(r"(?<![\w.-])(?:[.-]{1,6}(?: {1,3}| / )){7,}[.-]{1,6}(?![\w.-])")
        self._non_latin = re.compile(r"[\u0370-\u03ff\u0400-\u052f]")
        self._mixed_script = re.compile(r"\b(?=\w*[a-z])(?=\w*[\u0370-\u03ff\u0400-\u052f])\w+")
        self._leet_token = re.compile(r"(?<!\w)(?=\w*[a-z])\w*\d\w*")
        self._spaced = re.compile(
            r"(?<![^\W\d_])(?:(?:[^\W\d_] ){3,}|(?:[^\W\d_][.\-_*/|~^]){3,})[^\W\d_](?![^\W\d_])"
        )
        # Markdown emphasis or code marks inside a word: "Ig**nore** pre*vious* in`struc`tions"
        self._markup_in_words = re.compile(r"(?<=[^\W\d_])[*`~]+(?=[^\W\d_])")
        self._markup_at_words = re.compile(r"(?<=[^\W\d_])[*`~]+|[*`~]+(?=[^\W\d_])")
        self._word_codes = WordCodes()
        self._spaces = re.compile(r"[^\S\n]+")
        self._hyphenated = re.compile(r"\b[^\W\d_]+-[^\W\d_]+\b")
        self._newlines = re.compile(r"\s*\n\s*")

    def unmask(self, text: str) -> Unmasked:
        if len(text) > 2 * self._window:
            text = f"{text[: self._window]}\n{text[-self._window :]}"
        signals: set[str] = set()
        payloads: list[tuple[str, str]] = []
        view = self._fold(text, signals, payloads, depth=2)
        return Unmasked(view, tuple(payloads), frozenset(signals))

    def _fold(
        self, text: str, signals: set[str], payloads: list[tuple[str, str]], depth: int
    ) -> str:
        if not text.isascii():
            text = self._unhide(text, signals, payloads, depth)
        if "\\n" in text:  # newlines written as escapes, as in a JSON string
            text = text.replace("\\n", "\n")
        if "&" in text and self._entity.search(text):
            text = html.unescape(text)
        if depth > 0:
            self._decode_payloads(text, signals, payloads, depth)
        if len(self._markup_in_words.findall(text)) >= 2:
            text = self._markup_at_words.sub("", text)
        text = text.casefold()
        if not text.isascii():
            text = text.translate(self._accents).translate(_QUOTES)
            if self._non_latin.search(text):
                text = self._mixed_script.sub(lambda m: self._look_alike(m, signals), text)
        unleeted = self._leet_token.sub(lambda m: self._unleet(m, signals, _LEET), text)
        if depth > 0 and unleeted != text and "1" in text:  # "ru1es": 1 is an l as often as an i
            also = self._leet_token.sub(lambda m: self._unleet(m, signals, _LEET_L), text)
            self._keep(payloads, "leetspeak", also, signals, 0)
        text = self._spaced.sub(lambda m: self._join_letters(m, signals), unleeted)
        text = self._newlines.sub("\n", self._spaces.sub(" ", text)).strip()
        if depth > 0:
            self._turn_around(text, signals, payloads)
        return text

    def _unhide(
        self, text: str, signals: set[str], payloads: list[tuple[str, str]], depth: int
    ) -> str:
        """Unicode tag characters decoded; NFKC; invisible characters dropped."""
        for run in self._tag_run.findall(text):
            hidden = "".join(chr(ord(char) - 0xE0000) for char in run)
            signals.add("unicode_tags")
            self._keep(payloads, "unicode_tags", hidden, signals, depth)
        text = unicodedata.normalize("NFKC", text)
        if len(self._invisible_in_words.findall(text)) >= 2:
            signals.add("invisible_chars")
            # Letters spread out by invisible characters: a space between two is part of it.
            text = self._invisible_spaced.sub("", text)
        return self._invisible.sub("", text)

    def _decode_payloads(
        self, text: str, signals: set[str], payloads: list[tuple[str, str]], depth: int
    ) -> None:
        for match in self._base64.finditer(text):
            if len(payloads) >= self._max_payloads:
                return
            token = match.group()
            if token.isalpha() and (token.islower() or token.isupper()):
                continue  # a long word, not an encoding
            self._keep(payloads, "base64", _from_base64(token), signals, depth)
        for match in self._hex.finditer(text):
            if len(payloads) >= self._max_payloads:
                return
            self._keep(payloads, "hex", _from_hex(match.group(1)), signals, depth)
        if len(self._url_escape.findall(text)) >= 6:
            self._keep(payloads, "urlencoded", urllib.parse.unquote(text), signals, depth)
        for match in self._morse.finditer(text):
            self._keep(payloads, "morse", _from_morse(match.group()), signals, depth)
        self._keep(payloads, "binary", from_binary(text), signals, depth)
        self._keep(payloads, "nato", from_nato(text), signals, depth)
        self._keep(payloads, "acrostic", from_acrostic(text), signals, depth)
        self._keep(payloads, "split_payload", assemble_fragments(text), signals, depth)

    def _turn_around(self, view: str, signals: set[str], payloads: list[tuple[str, str]]) -> None:
        """Shifted letters (ROT13 and every other Caesar shift), words without vowels or with
        typos, pig latin, reversed text and words cut by hyphens, each tried only when the view
        shows it."""
        for kind, decoded in self._word_codes.decode(view):
            self._keep(payloads, kind, decoded, signals, 0)
        self._keep(payloads, "pig_latin", from_pig_latin(view), signals, 0)
        hyphenated = self._hyphenated.findall(view)
        if len(hyphenated) >= 3 and 3 * len(hyphenated) > view.count(" ") + 1:
            # "ig-nore a-ll pre-vious": most words cut by hyphens
            self._keep(payloads, "split_words", view.replace("-", ""), signals, 0)
        if _REVERSED_ANCHORS.search(view):
            self._keep(payloads, "reversed", view[::-1], signals, 0)
            words = " ".join(word[::-1] for word in view.split(" "))
            self._keep(payloads, "reversed", words, signals, 0)

    def _keep(
        self,
        payloads: list[tuple[str, str]],
        kind: str,
        decoded: str | None,
        signals: set[str],
        depth: int,
    ) -> None:
        if decoded is None or len(payloads) >= self._max_payloads:
            return
        decoded = decoded[: self._max_payload_chars]
        payloads.append((kind, self._fold(decoded, signals, payloads, depth - 1)))

    def _look_alike(self, match: re.Match[str], signals: set[str]) -> str:
        signals.add("homoglyphs")
        return match.group().translate(_CONFUSABLES)

    def _unleet(self, match: re.Match[str], signals: set[str], table: dict[int, str]) -> str:
        token = match.group()
        if _NOT_LEET.fullmatch(token):
            return token
        signals.add("leetspeak")
        if token.startswith("1"):  # a word opening on 1 reads as "i" ("1gnore") in either table
            return "i" + token[1:].translate(table)
        return token.translate(table)

    def _join_letters(self, match: re.Match[str], signals: set[str]) -> str:
        signals.add("spaced_letters")
        return "".join(char for char in match.group() if char.isalpha())


def _from_base64(token: str) -> str | None:
    try:
        data = base64.b64decode(token.translate(_URLSAFE) + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    return _readable(data)


def _from_hex(digits: str) -> str | None:
    try:
        data = bytes.fromhex(digits.replace(":", "").replace(" ", ""))
    except ValueError:
        return None
    return _readable(data)


_URLSAFE: Final = str.maketrans("-_", "+/")
_MORSE: Final = dict(
    zip(
        [
            ".-",
            "-...",
            "-.-.",
            "-..",
            ".",
            "..-.",
            "--.",
            "....",
            "..",
            ".---",
            "-.-",
            ".-..",
            "--",
            "-.",
            "---",
            ".--.",
            "--.-",
            ".-.",
            "...",
            "-",
            "..-",
            "...-",
            ".--",
            "-..-",
            "-.--",
            "--..",
            "-----",
            ".----",
            "..---",
            "...--",
            "....-",
            ".....",
            "-....",
            "--...",
            "---..",
            "----.",
        ],
        "abcdefghijklmnopqrstuvwxyz0123456789",
        strict=True,
    )
)


def _from_morse(code: str) -> str | None:
    """Dots and dashes to text: letters apart by one space, words by more or by " / "."""
    words = re.split(r" {2,}| / ", code.strip())
    text = " ".join("".join(_MORSE.get(letter, "") for letter in word.split()) for word in words)
    return text if " " in text else None


def _readable(data: bytes) -> str | None:
    """The bytes as text if they are UTF-8 prose (letters and spaces), else None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if " " not in text or (not text.isprintable() and not text.replace("\n", "").isprintable()):
        return None
    letters = sum(char.isalpha() for char in text)
    return text if letters >= len(text) // 2 else None
