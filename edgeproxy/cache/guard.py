"""The lexical guard: words that tell two similar questions apart where embeddings do not.

Sentence embeddings put "Convert Celsius to Fahrenheit" and "Convert Fahrenheit to Celsius" at
a cosine of 0.99, "safe" next to "not safe", 404 next to 403. Before a semantic match is served,
`Guard.refusal(new, stored)` compares the two questions' texts and names the first rule that
tells them apart, or returns None:

- "negation", "polarity": the sensitive words differ, in which or in their order. Negations are
  one word ("not", "n't", "never", "no", "without", "cannot"...: "don't" ≡ "do not"); so is each
  word of direction, comparison, change, judgement, audience, time and quantity (before/after,
  more/less, than, vs, from, increase/decrease, enable/disable, read/write, good/bad, adult/
  child, summer/winter, all/some, who/when/where/why: `_SENSITIVE_WORDS`). "negation" also
  when a word of one is a word of the other behind a negating prefix (safe/unsafe,
  install/uninstall, code/decode).
- "number": the numbers differ, in value or order, or in the word right after one (30 kg/lb).
  Number words count as digits (two ≡ 2), 1,000 as 1000; "%", "$", "°", "+"... must match.
- "entity": a name of one text is missing from the other: a capitalised word that does not
  open a sentence, an acronym, a code-like token (snake_case, dotted.names, iPhone, K2, 401(k)),
  a word the embedding model's vocabulary lacks (numpy, kotlin, ibuprofen: `common`), or a
  quoted string.
- "order": two content words both share come in opposite orders ("London to Paris"), unless
  one text writes them as one run of words and the other joins them with "of", "in", "for"...
  ("git commit" / "commit in git", "gold's symbol" / "symbol for gold").
- "substitution" (`strict`, the default): each text has a content word the other lacks, one
  word put for another (carrots/potatoes, plot/themes); a word added on one side only is allowed
  ("How many continents are there in the world?").

Refusing a paraphrase costs one upstream call; accepting a different question serves a wrong
answer. So every rule errs towards refusal: "What's the best time" and "When is the best time"
differ here, and so do symmetric relations written in the other order ("A and B"/"B and A").
Pure and fast: about 20 µs for a pair of profiled texts, 200 µs for two new ones (profiles are
memoised, since a stored text is compared again and again).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Final

# --- words -------------------------------------------------------------------------------------


def _list(words: str) -> list[str]:
    return words.split()


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


def _stem(word: str) -> str:
    """A crude stem, the same for a word's plural and -ing/-ed forms in most cases."""
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    for suffix, shortest in (("ing", 6), ("ed", 5)):
        if len(word) >= shortest and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    else:
        if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


_NEGATIONS: Final = _set(
    "not no non never none nothing nobody nowhere neither nor without cannot dont doesnt didnt "
    "cant wont isnt arent wasnt werent havent hasnt hadnt shouldnt wouldnt couldnt mustnt "
    "neednt aint"
)
# Words whose presence, absence or place changes what is asked. Grouped for reading only: any
# difference in their sequence refuses.
_SENSITIVE_WORDS: Final = """
    before after prior until since during earlier later previous next last early late latest
    oldest newest earliest
    more less fewer most least greater greatest smaller smallest higher highest lower lowest
    larger largest bigger biggest better best worse worst faster fastest slower slowest cheaper
    cheapest expensive longer longest shorter shortest taller tallest older younger max maximum
    min minimum above below over under exceed ahead behind than vs versus up down off out
    increase decrease raise reduce rise fall gain lose grow shrink add remove delete enable
    disable allow block deny forbid permit include exclude except excluding only start stop
    begin end open close import export read write upload download buy sell send receive push
    pull encrypt decrypt encode decode lock unlock install uninstall connect disconnect
    subscribe unsubscribe login logout sign into onto from
    good bad safe unsafe dangerous harmful healthy unhealthy legal illegal true false right
    wrong correct incorrect positive negative pros cons advantage disadvantage benefit risk
    drawback hot cold warm cool hard soft high low heavy light strong weak easy difficult cheap
    rich poor fast slow long short big small large old new young left inside outside internal
    external front back top bottom upper north south east west
    male female man men woman women boy girl adult child children kid baby infant toddler teen
    teenager elderly senior pregnant
    day night morning evening weekday weekend summer winter spring autumn daily weekly monthly
    yearly annual annually hourly
    all any every each some both either other another same different similar many much often
    far who whom whose when where why
"""
_SENSITIVE: Final = frozenset(_stem(word) for word in _set(_SENSITIVE_WORDS))
_NUMBER_WORDS: Final = {
    word: str(value)
    for value, word in enumerate(
        _list(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen "
            "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
        )
    )
} | {
    "thirty": "30",
    "forty": "40",
    "fifty": "50",
    "sixty": "60",
    "seventy": "70",
    "eighty": "80",
    "ninety": "90",
    "hundred": "100",
    "thousand": "1000",
    "million": "1000000",
    "billion": "1000000000",
    "dozen": "12",
    "half": "0.5",
    "twice": "x2",
    "double": "x2",
    "triple": "x3",
    "once": "x1",
    "first": "1st",
    "second": "2nd",
    "third": "3rd",
    "fourth": "4th",
    "fifth": "5th",
}
_STOP: Final = _set(
    "a an the and or but if then so of in on at to for with by about as is am are was were be "
    "been being do does did done doing have has had having i me my mine we us our you your it "
    "its this that these those there here what which how can could would will shall should may "
    "might must need please tell explain know want way get got give let make help show find "
    "use using just also really actually like simple simply term terms thing things whats hows "
    "wheres whos im ive id youre thats theres lets mean meaning"
)
_NEGATING_PREFIXES: Final = ("un", "in", "im", "il", "ir", "dis", "non", "de", "anti")
_SYMBOLS: Final = frozenset("%$€£¥°+*/=<>^")
_NOT_NAMES: Final = frozenset({"i", "i'm", "i've", "i'd", "i'll", "ok"})

_ITEM = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)*|[a-z]+(?:'[a-z]+)?|[,;:.!?()]")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_TOKEN = re.compile(r"\S+")
_EDGES = "\"'`\u201c\u201d\u2018\u2019.,;:!?()[]{}<>*"
_OPENERS = tuple(".!?:;")
_QUOTED = re.compile(
    "`([^`]+)`|\"([^\"]+)\"|\u201c([^\u201d]+)\u201d|\u2018([^\u2019]+)\u2019|(?<!\\w)'([^']+)'(?!\\w)"
)
_CODE = re.compile(r"[_./\\:()#@=<>\[\]{}+]|[a-z][A-Z]|[A-Za-z]\d|\d[A-Za-z]")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})
# What may join "X <of> Y" where the other text says "Y X" ("commit in git" / "git commit").
_ATTRIBUTIVE: Final = _set("of in for on at with about")
_DETERMINERS: Final = _set("a an the my your our its their this that")


@dataclass(frozen=True, slots=True)
class _Profile:
    words: tuple[str, ...]  # stems of all the words, in order (negations as "not")
    content: tuple[str, ...]  # stems of the words that are not stop words, in order
    chunks: dict[str, int]  # content stem → its first run of content words
    links: tuple[tuple[str, ...] | None, ...]  # the stop words after each run; None: a stop
    sensitive: tuple[str, ...]
    numbers: tuple[str, ...]  # each with the stem of the word after it
    symbols: tuple[str, ...]
    names: frozenset[str]  # casefolded stems
    quotes: tuple[str, ...]
    tokens: frozenset[str]  # every casefolded token stripped of punctuation, every word, stems
    text: str  # the casefolded words, one space apart and around


@dataclass(slots=True)
class _Reader:
    """What one pass over a casefolded text's items finds."""

    words: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    chunks: dict[str, int] = field(default_factory=dict)
    links: list[tuple[str, ...] | None] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    gap: list[str] | None = None  # stop words since the last run; None after punctuation
    runs: int = 0
    in_run: bool = False

    def word(self, raw: str) -> None:
        negation = raw.endswith("n't") or raw in _NEGATIONS
        raw = raw.partition("'")[0]  # what's, gold's, i'm
        stem = "not" if negation else _stem(raw)
        self.words.append(stem)
        if raw in _STOP or stem == "not":
            self.in_run = False
            if self.gap is not None:
                self.gap.append(raw)
            return
        if not self.in_run:
            if self.runs:
                self.links.append(None if self.gap is None else tuple(self.gap))
            self.runs += 1
            self.in_run, self.gap = True, []
        self.content.append(stem)
        self.chunks.setdefault(stem, self.runs - 1)

    def stop(self) -> None:
        self.in_run, self.gap = False, None


def _read(text: str) -> _Reader:
    """Words, runs of content words and numbers (digits or number words, each with the
    content word after it) of a casefolded text."""
    reader = _Reader()
    items = _ITEM.findall(text)
    for index, item in enumerate(items):
        value = _NUMBER_WORDS.get(item) or (item.replace(",", "") if item[0].isdigit() else None)
        if value is not None:
            after = items[index + 1] if index + 1 < len(items) else ""
            unit = after if after.isalpha() and after not in _STOP else ""
            reader.numbers.append(f"{value} {_NUMBER_WORDS.get(unit, _stem(unit))}")
            reader.stop()
        elif item.isalpha() or "'" in item:
            reader.word(item)
        else:
            reader.stop()
    return reader


def _names(text: str, common: frozenset[str]) -> set[str]:
    names = set()
    last_end, previous = 0, ""
    for found in _TOKEN.finditer(text):
        raw = found.group()
        gap = text[last_end : found.start()]
        opening = not previous or previous.endswith(_OPENERS) or "\n" in gap
        last_end, previous = found.end(), raw
        token = raw.strip(_EDGES)
        folded = token.casefold().removesuffix("'s")
        if not any(char.isalpha() for char in token) or folded in _NOT_NAMES:
            continue
        if (
            (token[0].isupper() and not opening)
            or (len(token) > 1 and token.isupper())
            or _CODE.search(token)
            or (common and _rare(folded, common))
        ):
            names.add(_stem(folded) if folded.isalpha() else folded)
    return names


def _rare(word: str, common: frozenset[str]) -> bool:
    """A word of letters the vocabulary does not know, in any of its simple forms."""
    if not word.isalpha() or len(word) < 3 or word in _STOP:
        return False
    forms = {word, _stem(word), word.removesuffix("s"), word.removesuffix("es")}
    return forms.isdisjoint(common)


@functools.lru_cache(maxsize=4096)
def _profile(text: str, common: frozenset[str]) -> _Profile:
    plain = text.translate(_APOSTROPHES)
    folded = plain.casefold()
    read = _read(folded)
    quoted = (next(group for group in found.groups() if group) for found in _QUOTED.finditer(plain))
    quotes = tuple(filter(None, (" ".join(_WORD.findall(quote.casefold())) for quote in quoted)))
    words = _WORD.findall(folded)
    tokens = {token.strip(_EDGES).removesuffix("'s") for token in folded.split()}
    tokens |= {*words, *read.words}
    tokens |= {_stem(token) for token in tokens if token.isalpha()}  # as names are kept
    return _Profile(
        words=tuple(read.words),
        content=tuple(read.content),
        chunks=read.chunks,
        links=tuple(read.links),
        sensitive=tuple(word for word in read.words if word == "not" or word in _SENSITIVE),
        numbers=tuple(read.numbers),
        symbols=tuple(sorted(char for char in plain if char in _SYMBOLS)),
        names=frozenset(_names(plain, common)),
        quotes=quotes,
        tokens=frozenset(tokens),
        text=" " + " ".join(words) + " ",
    )


# --- the guard ---------------------------------------------------------------------------------


@functools.cache
def model_vocabulary() -> frozenset[str]:
    """The whole words of the embedding model's vocabulary (about 21,700), from the tokenizer
    file edgeproxy ships: what is not among them is treated as a name."""
    path = resources.files("edgeproxy.cache.data").joinpath("minilm_tokenizer.json")
    vocab = json.loads(path.read_text("utf-8"))["model"]["vocab"]
    return frozenset(word for word in vocab if word.isascii() and word.isalpha())


@dataclass(frozen=True, slots=True)
class Guard:
    """`common`: the words that are not names (by default the model's vocabulary; an empty
    set turns that rule off). `strict`: refuse one content word put for another."""

    common: frozenset[str] = field(default_factory=model_vocabulary)
    strict: bool = True

    def allows(self, new: str, stored: str) -> bool:
        return self.refusal(new, stored) is None

    def refusal(self, new: str, stored: str) -> str | None:
        """None when nothing lexical tells the two apart, else the rule that does."""
        a, b = _profile(new, self.common), _profile(stored, self.common)
        for reason, differ in _RULES:
            if differ(a, b) and (self.strict or reason != "substitution"):
                return reason
        return None


def _polarity(a: _Profile, b: _Profile) -> bool:
    return a.sensitive != b.sensitive


def _negation(a: _Profile, b: _Profile) -> bool:
    return a.sensitive.count("not") != b.sensitive.count("not") or (
        _negated(a.words, b.words) or _negated(b.words, a.words)
    )


def _number(a: _Profile, b: _Profile) -> bool:
    return a.numbers != b.numbers or a.symbols != b.symbols


def _entity(a: _Profile, b: _Profile) -> bool:
    return not (
        a.names <= b.tokens
        and b.names <= a.tokens
        and _quoted(a.quotes, b.text)
        and _quoted(b.quotes, a.text)
    )


def _negated(words: Iterable[str], others: tuple[str, ...]) -> bool:
    """A word of `words` is a word of `others` behind a negating prefix."""
    known = set(others)
    for word in words:
        for prefix in _NEGATING_PREFIXES:
            root = word.removeprefix(prefix)
            if root != word and len(root) >= 3 and root in known:
                return True
    return False


def _quoted(quotes: tuple[str, ...], text: str) -> bool:
    return all(f" {quote} " in text for quote in quotes)


def _substituted(a: _Profile, b: _Profile) -> bool:
    """Each text has a content word the other lacks (one word put for another)."""
    only_a = set(a.content) - set(b.content)
    return bool(only_a) and not set(b.content) <= set(a.content)


def _reversed(a: _Profile, b: _Profile) -> bool:
    """Whether two content words both texts share come in opposite orders (first
    occurrences), unless one text writes them as one run of words and the other as "X of Y"."""
    where_a, where_b = _first(a.content), _first(b.content)
    ordered = sorted(where_a.keys() & where_b.keys(), key=where_a.__getitem__)
    for i, x in enumerate(ordered):
        for y in ordered[i + 1 :]:
            if where_b[x] > where_b[y] and not (
                (a.chunks[x] == a.chunks[y] and _attributive(b, y, x))
                or (b.chunks[x] == b.chunks[y] and _attributive(a, x, y))
            ):
                return True
    return False


def _first(words: tuple[str, ...]) -> dict[str, int]:
    where: dict[str, int] = {}
    for index, word in enumerate(words):
        where.setdefault(word, index)
    return where


_RULES: Final[tuple[tuple[str, Callable[[_Profile, _Profile], bool]], ...]] = (
    ("negation", _negation),
    ("polarity", _polarity),
    ("number", _number),
    ("entity", _entity),
    ("order", _reversed),
    ("substitution", _substituted),
)


def _attributive(text: _Profile, head: str, tail: str) -> bool:
    """`tail`'s run follows `head`'s, joined by a preposition such as "of" or "in"."""
    first, second = text.chunks[head], text.chunks[tail]
    if second != first + 1:
        return False
    link = text.links[first]
    return (
        bool(link)
        and link is not None
        and link[0] in _ATTRIBUTIVE
        and _DETERMINERS.issuperset(link[1:])
    )
