"""Finding personal data and secrets in text: e-mail addresses, phone numbers, payment cards,
IBANs, US social security numbers, IP addresses, and credentials.

Each kind is a hand-written pattern that finds candidates and a check that accepts them: the
Luhn digit and an issuer's prefix and length for cards, the ISO 13616 length and mod-97 check
for IBANs, the SSA's area, group and serial rules for SSNs, octets of at most 255 for IPv4 and
the `ipaddress` parser for IPv6, digit counts and groupings for phones (so order numbers,
dates, versions and timestamps are not phones), a decoded JSON header for JWTs. Where text
alone is ambiguous (ten bare digits, nine bare digits, `1.2.3.4`), a few words just before the
candidate decide ("call", "SSN", "version"). docs/guardrails.md weighs this against Presidio.

Every pattern is compiled when the module is imported (at load); a `Detector` keeps the rules
of its kinds, and `find` compiles nothing. Overlapping candidates are settled the same way
every time: one value spanning them, of the most specific candidate's kind (then the longest).
Pure: no I/O, no state between calls.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

KINDS: Final = ("email", "phone", "credit_card", "iban", "ssn", "ip", "secret")
# How each kind is named in placeholders and redaction marks (`[EMAIL_1]`, `[REDACTED_EMAIL]`).
LABELS: Final = {kind: kind.upper() for kind in KINDS}
# Which kind names a value that overlapping candidates make: the first in this order.
_SPECIFICITY: Final = {
    kind: rank
    for rank, kind in enumerate(("secret", "credit_card", "iban", "ssn", "email", "ip", "phone"))
}
# How far before a candidate the words that decide an ambiguous one are looked for.
CONTEXT_CHARS: Final = 32


@dataclass(frozen=True, slots=True)
class Match:
    """One detected value: its kind and where it is (`text[start:end]`)."""

    kind: str
    start: int
    end: int


Check = Callable[[str, "re.Match[str]"], bool]
# Where the value a candidate holds ends, or None when it holds none.
Accept = Callable[[str, "re.Match[str]"], int | None]


def _always(text: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class _Rule:
    """A pattern for candidates, the check that accepts them, and where to look: a scope
    (`_windows`) and a cheap test the text must pass first (most texts pass none)."""

    kind: str
    pattern: re.Pattern[str]
    accept: Accept
    scope: str
    trigger: Callable[[str], bool] = _always
    min_digits: int = 0  # in a window of the `numbers` scope
    # Candidates may share characters (addresses run together share a domain and a local
    # part): each start is tried, so which are found does not depend on where a window starts.
    overlapping: bool = False


def _whole(check: Check) -> Accept:
    """A check of the whole candidate."""
    return lambda text, match: match.end() if check(text, match) else None


def _before(text: str, match: re.Match[str]) -> str:
    return text[max(0, match.start() - CONTEXT_CHARS) : match.start()]


# What separates the digits of cards and phones.
_NOT_DIGITS = str.maketrans("", "", " -.()+")


# --- e-mail ------------------------------------------------------------------------------

# Local parts and domain labels may hold any letters (RFC 6531, IDNA); top-level domains are
# ASCII (an IDN one is written `xn--…`).
_EMAIL = re.compile(
    r"(?<![\w.%+\-])[\w.%+\-]{1,64}@"
    r"(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.){1,8}(?:[A-Za-z]{2,24}|xn--[a-z0-9]{1,59})(?![\w\-])"
)
# `icon@2x.png` is a file, not an address.
_FILE_SUFFIXES: Final = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "pdf"})


def _email(text: str, match: re.Match[str]) -> bool:
    value = match.group()
    local, _, domain = value.partition("@")
    return (
        not local.startswith(".")
        and not local.endswith(".")
        and ".." not in local
        and domain.rpartition(".")[2].lower() not in _FILE_SUFFIXES
    )


# --- phone -------------------------------------------------------------------------------

_PHONE = re.compile(
    r"(?<![\w+\-./])"
    r"(?:\+[0-9]{1,3}[ .\-]?)?"  # country code
    r"(?:\([0-9]{1,5}\)[ .\-]?)?"  # area code in parentheses
    r"[0-9]{1,15}(?:([ .\-])[0-9]{1,15}(?:\1[0-9]{1,15}){0,4})?"  # groups, one separator
    r"(?![\w\-]|[.,][0-9])"
)
_PHONE_WORDS = re.compile(
    r"(?i)\b(?:tel|phone|telephone|mobile|cell|cellphone|call|fax|whatsapp|sms|text)\b"
)
_NANP_GROUPS: Final = ((3, 3, 4), (1, 3, 3, 4))
_DIGIT_GROUPS = re.compile(r"[0-9]+")


def _phone(text: str, match: re.Match[str]) -> bool:
    value = match.group()
    digits = value.translate(_NOT_DIGITS)
    if value.startswith("+"):
        return 8 <= len(digits) <= 15 and digits[0] != "0"
    if value.isdigit():  # bare digits are ids and timestamps unless the text says phone
        return 10 <= len(digits) <= 11 and bool(_PHONE_WORDS.search(_before(text, match)))
    groups = tuple(len(group) for group in _DIGIT_GROUPS.findall(value))
    if digits[0] == "0":  # a national number after the trunk prefix (UK, France, Germany…)
        return (
            10 <= len(digits) <= 11
            and digits[1] != "0"
            and 2 <= groups[0] <= 5
            and min(groups) >= 2  # `0.123456789` is a fraction
        )
    return _nanp(digits, groups)


def _nanp(digits: str, groups: tuple[int, ...]) -> bool:
    """North American numbering: (NXX) NXX-XXXX, optionally after a 1."""
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) != 10 or digits[0] in "01" or digits[3] in "01":
        return False
    return groups in _NANP_GROUPS


# --- payment cards -----------------------------------------------------------------------

_CARD = re.compile(
    r"(?<![\w\-.])(?:"
    r"[0-9]{4}([ \-]?)[0-9]{4}\1[0-9]{4}\1[0-9]{1,4}(?:\1[0-9]{1,3})?"  # 13-19 digits in fours
    r"|3[0-9]{3}([ \-]?)[0-9]{6}\2[0-9]{4,5}"  # Amex and Diners: 4-6-5 and 4-6-4
    r")(?![\w\-]|[.,][0-9])"
)
# Issuer identification: (lowest prefix, highest prefix, card lengths).
_ISSUERS: Final = (
    ("4", "4", (13, 16, 19)),  # Visa
    ("51", "55", (16,)),  # Mastercard
    ("2221", "2720", (16,)),  # Mastercard
    ("2200", "2204", (16, 17, 18, 19)),  # Mir
    ("34", "34", (15,)),  # American Express
    ("37", "37", (15,)),  # American Express
    ("300", "305", (14, 15, 16, 17, 18, 19)),  # Diners Club
    ("36", "36", (14, 15, 16, 17, 18, 19)),  # Diners Club
    ("3095", "3095", (14, 15, 16, 17, 18, 19)),  # Diners Club
    ("38", "39", (14, 15, 16, 17, 18, 19)),  # Diners Club
    ("3528", "3589", (16, 17, 18, 19)),  # JCB
    ("6011", "6011", (16, 17, 18, 19)),  # Discover
    ("644", "649", (16, 17, 18, 19)),  # Discover
    ("65", "65", (16, 17, 18, 19)),  # Discover
    ("62", "62", (16, 17, 18, 19)),  # UnionPay
    ("50", "50", (13, 14, 15, 16, 17, 18, 19)),  # Maestro
    ("56", "69", (13, 14, 15, 16, 17, 18, 19)),  # Maestro
)


_DOUBLED = str.maketrans("0123456789", "0246813579")  # each digit doubled, its digits added


def luhn_valid(digits: str) -> bool:
    """The check digit of payment cards (ISO/IEC 7812): every second digit from the right
    doubled, the sum a multiple of ten."""
    doubled = digits[-2::-2].translate(_DOUBLED)
    return (sum(map(int, digits[::-2])) + sum(map(int, doubled))) % 10 == 0


def _card(text: str, match: re.Match[str]) -> bool:
    digits = match.group().translate(_NOT_DIGITS)
    return luhn_valid(digits) and any(
        low <= digits[: len(low)] <= high and len(digits) in lengths
        for low, high, lengths in _ISSUERS
    )


# --- IBAN --------------------------------------------------------------------------------

_IBAN = re.compile(
    r"(?<![\w\-])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])"
)
# ISO 13616 registry: the length of each country's IBAN.
_IBAN_LENGTHS: Final = {
    **dict.fromkeys(("NO",), 15),
    **dict.fromkeys(("BE",), 16),
    **dict.fromkeys(("DK", "FI", "FO", "GL", "NL"), 18),
    **dict.fromkeys(("MK", "SI"), 19),
    **dict.fromkeys(("AT", "BA", "EE", "KZ", "LT", "LU", "XK"), 20),
    **dict.fromkeys(("CH", "HR", "LI", "LV"), 21),
    **dict.fromkeys(("BG", "BH", "CR", "DE", "GB", "GE", "IE", "ME", "RS", "VA"), 22),
    **dict.fromkeys(("AE", "GI", "IL", "IQ", "TL"), 23),
    **dict.fromkeys(("AD", "CZ", "ES", "MD", "PK", "RO", "SA", "SE", "SK", "TN", "VG"), 24),
    **dict.fromkeys(("PT", "ST"), 25),
    **dict.fromkeys(("IS", "TR"), 26),
    **dict.fromkeys(("FR", "GR", "IT", "MC", "MR", "SM"), 27),
    **dict.fromkeys(("AL", "AZ", "BY", "CY", "DO", "GT", "HU", "LB", "PL", "SV"), 28),
    **dict.fromkeys(("BR", "EG", "PS", "QA", "UA"), 29),
    **dict.fromkeys(("JO", "KW", "MU"), 30),
    **dict.fromkeys(("MT", "SC"), 31),
    **dict.fromkeys(("LC",), 32),
}


# ISO 7064 reads each letter as two digits, A = 10 to Z = 35.
_IBAN_NUMBERS = str.maketrans({chr(code): str(code - 55) for code in range(65, 91)})


def iban_valid(compact: str) -> bool:
    """ISO 13616: the registered length for the country and ISO 7064 mod 97-10."""
    compact = compact.upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    digits = (compact[4:] + compact[:4]).translate(_IBAN_NUMBERS)
    return digits.isdecimal() and digits.isascii() and int(digits) % 97 == 1


def _iban(text: str, match: re.Match[str]) -> int | None:
    """A candidate may run on into a following group of capitals or digits (`… 3000 AND`):
    only the country's length is taken, and it must end where a group does."""
    candidate = match.group()
    length = _IBAN_LENGTHS.get(candidate[:2], 0)
    if " " not in candidate:  # written without spaces, it is one run: all of it or nothing
        return match.end() if len(candidate) == length and iban_valid(candidate) else None
    taken = 0
    for offset, char in enumerate(candidate):
        if char != " ":
            taken += 1
            if taken == length:
                end = offset + 1
                at_group_end = end == len(candidate) or candidate[end] == " "
                valid = at_group_end and iban_valid(candidate[:end].replace(" ", ""))
                return match.start() + end if valid else None
    return None


# --- US social security numbers ----------------------------------------------------------

_SSN = re.compile(r"(?<![\w\-.])([0-9]{3})([\- ]?)([0-9]{2})\2([0-9]{4})(?![\w\-]|[.,][0-9])")
_SSN_WORDS = re.compile(r"(?i)\b(?:ssn|ssns|social security|ss#|ssa)")


def _ssn(text: str, match: re.Match[str]) -> bool:
    area, separator, group, serial = match.groups()
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    # Nine bare digits are any id; a space-separated 3-2-4 is rare outside SSNs, but ask too.
    return separator == "-" or bool(_SSN_WORDS.search(_before(text, match)))


# --- IP addresses ------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.\-])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![\w\-]|\.[0-9])")
# Dotted quads that number things rather than hosts: versions, builds, sections.
_VERSION_WORDS = re.compile(
    r"(?i)(?:\b(?:version|ver|release|build|firmware|v|section|chapter|clause|step|figure|"
    r"table|item|rule|paragraph)|§)[\s:=.]*\Z"
)


def _ipv4(text: str, match: re.Match[str]) -> bool:
    octets = match.group().split(".")
    if any(int(o) > 255 or (len(o) > 1 and o[0] == "0") for o in octets):
        return False
    return not _VERSION_WORDS.search(_before(text, match))


_IPV6 = re.compile(
    r"(?<![\w:.])(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)"
    r"[0-9A-Fa-f:]{2,39}(?:(?<=:)[0-9]{1,3}(?:\.[0-9]{1,3}){3})?(?:%[0-9A-Za-z]{1,16})?"
    r"(?![\w:]|\.[0-9])"
)


def _ipv6(text: str, match: re.Match[str]) -> bool:
    value = match.group()
    # `dead::beef`, `cafe::`: hex words that parse, but are not how anyone writes an address.
    if not any(c.isdigit() for c in value.partition("%")[0]):
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


# --- secrets -----------------------------------------------------------------------------

_PEM_LABEL = r"-----{} (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
PEM_BEGIN: Final = _PEM_LABEL.format("BEGIN")
PEM_END: Final = _PEM_LABEL.format("END")
_LINE = r"(?:[ \t]*(?:\r?\n|(?:\\r)?\\n)[ \t]*)"  # a line break, also as escaped in JSON source
_KEYS = (
    r"sk-ant-[A-Za-z0-9_\-]{20,}",  # Anthropic
    r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}",  # OpenAI project, service, admin
    r"sk-[A-Za-z0-9]{32,}",  # OpenAI's older user keys and OpenAI-compatible servers
    r"AIza[0-9A-Za-z_\-]{35}",  # Google
    r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}",  # AWS access key ids
    r"gh[pousr]_[A-Za-z0-9]{36,251}",  # GitHub
    r"github_pat_[A-Za-z0-9_]{22,244}",  # GitHub fine-grained
    r"xox[a-z]-[A-Za-z0-9\-]{10,}",  # Slack
    r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe
    r"eyJ[A-Za-z0-9_\-]{12,}\.eyJ[A-Za-z0-9_\-]{5,}(?:\.[A-Za-z0-9_\-]*)?",  # JWT (JWS)
)
_TOKEN_SECRET = re.compile(r"(?<![\w\-])(?:" + "|".join(_KEYS) + r")(?![\w\-])")
# A private key: its header, its body lines, its footer. Without a footer (a truncated paste),
# the lines that look like a key's body.
_PRIVATE_KEY = re.compile(
    PEM_BEGIN
    + rf"(?:(?:{_LINE}|[ ])(?:[A-Za-z0-9+/=]{{16,}}|(?:Proc-Type|DEK-Info|Comment):[^\r\n\\]*))*"
    rf"(?:(?:{_LINE}|[ ])[A-Za-z0-9+/=]{{1,15}})?(?:(?:{_LINE}|[ ])?{PEM_END})?"
)


def _secret(text: str, match: re.Match[str]) -> bool:
    value = match.group()
    if value.startswith("eyJ"):
        return _jwt_header(value.partition(".")[0])
    if value.startswith("sk-") and not value.startswith(("sk-ant-", "sk-proj-", "sk-svcacct-")):
        # An older OpenAI key mixes digits and letters; `sk-` before one long word is prose.
        body = value[3:]
        return any(c.isdigit() for c in body) and any(c.isalpha() for c in body)
    return True


def _framed(text: str, match: re.Match[str]) -> bool:
    """A private key's header is check enough: nothing else is written that way."""
    return True


def _jwt_header(segment: str) -> bool:
    """A JWT's first segment is base64url JSON naming its algorithm or type."""
    try:
        header = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return False
    return header.startswith(b"{") and (b'"alg"' in header or b'"typ"' in header)


# --- the detector ------------------------------------------------------------------------
#
# Running every pattern over a whole prompt costs hundreds of microseconds per KB. Cheap views
# of the text find where candidates can be, and the patterns run only there (windows). The
# views are made on `text.encode("ascii", "replace")`, which has one byte per character, so
# positions carry over, and byte translation and literal search are fast whatever the script.


def _table(classes: dict[str, bytes], other: bytes) -> bytes:
    """A `bytes.translate` table: each byte of a class's characters to that class's byte."""
    table = bytearray(other * 256)
    for chars, to in classes.items():
        for char in chars:
            table[ord(char)] = to[0]
    return bytes(table)


_DIGITS = "0123456789"
_CAPITALS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LETTERS = _CAPITALS + _CAPITALS.lower()
# Digits, capitals and the separators of numbers; everything else `~`.
_SHAPE = _table({_DIGITS: b"0", _CAPITALS: b"A", " .-": b" ", "()": b"("}, b"~")
# The characters of a token (a key, a JWT): every token secret has a run of at least 15.
_TOKEN = _table({_LETTERS + _DIGITS + "_-.": b"w"}, b" ")
_LONG_TOKEN = b"w" * 15
# A phone, card, SSN or IPv4 address: seven or more digits and separators, digits at the ends.
_NUMBER = re.compile(rb"0[0 (]{5,}0")
_IBAN_START = b"AA00"
_BEFORE_NUMBER = 3  # a phone's `+` or `(` before the run
_AFTER = 2  # room for a pattern's lookahead past its window
_IBAN_SPAN = 42 + _AFTER  # 34 characters in groups of four
_EMAIL_BEFORE, _EMAIL_AFTER = 65, 256 + _AFTER  # local part, domain
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_PEM_START = b"-----BEGIN"
_NO_LIMIT = 1 << 62


def _ipv6_hint(text: str) -> bool:
    return ":" in text and _IPV6_HINT.search(text) is not None


_RULES: Final = (
    _Rule("email", _EMAIL, _whole(_email), "at", overlapping=True),
    _Rule("phone", _PHONE, _whole(_phone), "numbers", min_digits=8),
    _Rule("credit_card", _CARD, _whole(_card), "numbers", min_digits=13),
    _Rule("iban", _IBAN, _iban, "capitals"),
    _Rule("ssn", _SSN, _whole(_ssn), "numbers", min_digits=9),
    _Rule("ip", _IPV4, _whole(_ipv4), "numbers", min_digits=4),
    _Rule("ip", _IPV6, _whole(_ipv6), "text", _ipv6_hint),
    _Rule("secret", _TOKEN_SECRET, _whole(_secret), "tokens"),
    _Rule("secret", _PRIVATE_KEY, _whole(_framed), "keys"),
)
# (start, end, digits): where a scope's patterns run, and how many digits a number there has.
Window = tuple[int, int, int]


def _windows(text: str, scopes: frozenset[str]) -> dict[str, list[Window]]:
    """The windows of each scope in `scopes`: `text` is all of it; `numbers` the runs of
    digits and separators; `capitals` the places an IBAN can start; `at` each `@` with an
    address's length either side; `tokens` the long runs of token characters; `keys` each
    private key header with the rest of the text (its body)."""
    size = len(text)
    windows: dict[str, list[Window]] = {"text": [(0, size, _NO_LIMIT)]}
    ascii_text = text.encode("ascii", "replace")
    if "numbers" in scopes or "capitals" in scopes:
        shape = ascii_text.translate(_SHAPE)
        windows["numbers"] = [
            (max(0, hit.start() - _BEFORE_NUMBER), min(size, hit.end() + _AFTER), digits)
            for hit in _NUMBER.finditer(shape)
            if (digits := hit.group().count(b"0")) >= 4
        ]
        windows["capitals"] = [
            (start, min(size, start + _IBAN_SPAN), _NO_LIMIT)
            for start in _positions(shape, _IBAN_START)
        ]
    if "at" in scopes and b"@" in ascii_text:
        windows["at"] = [
            (max(0, at - _EMAIL_BEFORE), min(size, at + _EMAIL_AFTER), _NO_LIMIT)
            for at in _positions(ascii_text, b"@")
        ]
    if "tokens" in scopes:
        tokens = ascii_text.translate(_TOKEN)
        windows["tokens"] = [
            (start, min(size, end + _AFTER), _NO_LIMIT) for start, end in _long_tokens(tokens)
        ]
    if "keys" in scopes and _PEM_START in ascii_text:
        windows["keys"] = [(start, size, _NO_LIMIT) for start in _positions(ascii_text, _PEM_START)]
    return {scope: _merged(found) if len(found) > 1 else found for scope, found in windows.items()}


def _merged(windows: list[Window]) -> list[Window]:
    """Overlapping windows (in order of start) as one, so a candidate is found once."""
    merged: list[Window] = []
    for start, end, digits in windows:
        if merged and start < merged[-1][1]:
            first, last, counted = merged[-1]
            merged[-1] = (first, max(last, end), counted + digits)
        else:
            merged.append((start, end, digits))
    return merged


def _positions(haystack: bytes, needle: bytes) -> Iterator[int]:
    at = haystack.find(needle)
    while at != -1:
        yield at
        at = haystack.find(needle, at + 1)


def _long_tokens(tokens: bytes) -> Iterator[tuple[int, int]]:
    start = tokens.find(_LONG_TOKEN)
    while start != -1:
        end = tokens.find(b" ", start)
        end = len(tokens) if end == -1 else end
        yield start, end
        start = tokens.find(_LONG_TOKEN, end)


class Detector:
    """Finds the configured kinds in text. Built once (at load); `find` is safe to share."""

    __slots__ = ("_rules", "_scopes", "kinds")

    def __init__(self, kinds: Iterable[str]) -> None:
        self.kinds = frozenset(kinds)
        unknown = self.kinds - set(KINDS)
        if unknown:
            raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        self._rules = tuple(rule for rule in _RULES if rule.kind in self.kinds)
        self._scopes = frozenset(rule.scope for rule in self._rules)

    def find(self, text: str) -> list[Match]:
        """The values in `text`, in order, none overlapping."""
        windows = _windows(text, self._scopes)
        found: list[Match] = []
        for rule in self._rules:
            scope = windows.get(rule.scope)
            if not scope or not rule.trigger(text):
                continue
            for start, end, digits in scope:
                if digits < rule.min_digits:
                    continue
                for candidate in _candidates(rule, text, start, end):
                    if candidate.end() == end < len(text):
                        continue  # a lookahead took the window's end for the text's
                    value_end = rule.accept(text, candidate)
                    if value_end is not None:
                        found.append(Match(rule.kind, candidate.start(), value_end))
        return _settled(found) if len(found) > 1 else found


def _candidates(rule: _Rule, text: str, start: int, end: int) -> Iterator[re.Match[str]]:
    if not rule.overlapping:
        yield from rule.pattern.finditer(text, start, end)
        return
    candidate = rule.pattern.search(text, start, end)
    while candidate is not None:
        yield candidate
        candidate = rule.pattern.search(text, candidate.start() + 1, end)


def _settled(found: list[Match]) -> list[Match]:
    """Overlapping candidates become one value spanning them all: a redactor must not leave in
    clear a part of something it recognised (a key glued to a private key's header, addresses
    run together). The value is named after the most specific candidate (a key inside what
    looks like an address is a secret), then the longest."""
    found.sort(key=lambda m: m.start)
    settled: list[Match] = []
    group = [found[0]]
    end = found[0].end
    for match in found[1:]:
        if match.start < end:
            group.append(match)
            end = max(end, match.end)
        else:
            settled.append(_spanning(group, end))
            group, end = [match], match.end
    settled.append(_spanning(group, end))
    return settled


def _spanning(group: list[Match], end: int) -> Match:
    named = min(group, key=lambda m: (_SPECIFICITY[m.kind], m.start - m.end, m.start))
    return Match(named.kind, group[0].start, end)
