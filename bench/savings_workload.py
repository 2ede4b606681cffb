"""The savings report's workload: which question each request asks, and what answering it costs.

A workload is a pure function of its seed and shape, so two runs replay the very same requests.
Each request is one of three kinds, drawn independently with the shape's shares:

- popular: a question of a fixed pool, its rank drawn from a Zipf law (rank k is asked with
  weight 1/k^s), so a few questions are asked over and over and a long tail now and then. The
  pool is the `a` side of the labelled pairs (tests/data/semantic_pairs.jsonl), in an order
  the seed shuffles.
- paraphrase: the `b` side of a labelled pair whose `a` was already asked, so the semantic
  layer has something to match. The pair's label says whether the two mean the same
  (`same`: a semantic hit is right) or only look alike (a negation, another entity or
  number: a hit is wrong). Before any `a` is asked, a popular question is asked instead.
- unique: a question made up for this request alone (a ticket number, a sum, a phrase to
  translate), never asked again; many differ from each other by a number or a name only.

Every distinct text carries the usage a model would report for it, prompt and completion
tokens drawn once from log-normal distributions (so every ask of a text costs the same), and a
`meaning`: texts labelled `same` share one (the closure of the labels), every other text has
its own. A semantic hit is right exactly when the answer it served was stored for a text of
the asked text's meaning.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import orjson

PAIRS_FILE: Final = Path(__file__).resolve().parents[1] / "tests" / "data" / "semantic_pairs.jsonl"
Source = Literal["popular", "paraphrase", "unique"]
SOURCES: Final[tuple[Source, ...]] = ("popular", "paraphrase", "unique")


@dataclass(frozen=True, slots=True)
class LabelledPair:
    """Two questions and whether they mean the same (tests/data/semantic_pairs.jsonl)."""

    a: str
    b: str
    same: bool
    kind: str  # paraphrase, or how a different pair differs: negation, entity, number...


@dataclass(frozen=True, slots=True)
class TokenShape:
    """Log-normal token counts: the median and the spread (sigma of the log), clipped."""

    median: float
    sigma: float
    low: int
    high: int

    def draw(self, rng: random.Random) -> int:
        drawn = rng.lognormvariate(math.log(self.median), self.sigma)
        return min(self.high, max(self.low, round(drawn)))


# A chat assistant with a system prompt and some retrieved context: prompts of a few hundred
# tokens (a long tail into the thousands), answers of about two hundred.
PROMPT_TOKENS: Final = TokenShape(median=500, sigma=0.9, low=20, high=32_000)
COMPLETION_TOKENS: Final = TokenShape(median=180, sigma=0.8, low=5, high=4_000)


@dataclass(frozen=True, slots=True)
class Shape:
    """How many requests and how they are mixed; the unique share is what remains."""

    requests: int = 3000
    popular_share: float = 0.5
    paraphrase_share: float = 0.2
    zipf_exponent: float = 1.1
    prompt_tokens: TokenShape = PROMPT_TOKENS
    completion_tokens: TokenShape = COMPLETION_TOKENS

    def __post_init__(self) -> None:
        if self.requests < 0:
            raise ValueError(f"requests must be >= 0, got {self.requests}")
        shares = (self.popular_share, self.paraphrase_share)
        if min(shares) < 0 or sum(shares) > 1:
            raise ValueError(
                f"the popular and paraphrase shares must be >= 0 and sum to <= 1, got {shares}"
            )
        if self.zipf_exponent <= 0:
            raise ValueError(f"the Zipf exponent must be > 0, got {self.zipf_exponent}")


@dataclass(frozen=True, slots=True)
class Question:
    """A distinct text of the workload with the usage a model reports for it."""

    id: int
    text: str
    source: Source
    meaning: int  # the id shared by texts labelled as meaning the same
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class Workload:
    """The requests in order (`asks`: question ids) and the questions they ask."""

    seed: int
    shape: Shape
    questions: tuple[Question, ...]
    asks: tuple[int, ...]
    labelled_different: frozenset[frozenset[int]]  # pairs of ids labelled as not the same

    def asked(self, index: int) -> Question:
        return self.questions[self.asks[index]]

    def labelled_apart(self, one: int, other: int) -> bool:
        """Whether the labels say these two questions look alike but differ."""
        return frozenset((one, other)) in self.labelled_different


def load_pairs(path: Path = PAIRS_FILE) -> tuple[LabelledPair, ...]:
    rows = (orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip())
    return tuple(LabelledPair(r["a"], r["b"], r["same"], r["kind"]) for r in rows)


# Unique questions: templates whose slots make each text new. Many differ from another by one
# number or name only, which is what a semantic layer must not take for the same question.
_NAMES = ("Priya", "Tomasz", "Amara", "Kenji", "Lucia", "Omar", "Ingrid", "Mateo", "Chen", "Zoe")
_TOPICS = ("pricing", "onboarding", "the outage", "the Q3 roadmap", "invoice disputes", "SSO")
_LANGUAGES = ("French", "German", "Japanese", "Portuguese", "Polish", "Korean", "Swahili")
_PHRASES = ("the delivery is late", "thank you for waiting", "the meeting moved", "see you soon")
_UNITS = (("miles", "kilometres"), ("pounds", "kilograms"), ("gallons", "litres"))


def _unique_text(rng: random.Random) -> str:
    n = rng.randrange(10_000, 1_000_000)
    kind = rng.randrange(6)
    if kind == 0:
        return f"Summarise support ticket #{n} and suggest a first reply."
    if kind == 1:
        return f"What is {rng.randrange(11, 999)} multiplied by {rng.randrange(11, 999)}?"
    if kind == 2:
        name, topic = rng.choice(_NAMES), rng.choice(_TOPICS)
        return f"Draft a short email to {name} about {topic}, reference {n}."
    if kind == 3:
        phrase, language = rng.choice(_PHRASES), rng.choice(_LANGUAGES)
        return f"Translate '{phrase}, order {n}' into {language}."
    if kind == 4:
        here, there = rng.choice(_UNITS)
        return f"Convert {n / 100:.2f} {here} to {there}."
    return f"Where is my parcel with tracking number {n}?"


class _Meanings:
    """Union-find over texts: the closure of the `same` labels."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def root(self, text: str) -> str:
        parent = self._parent.setdefault(text, text)
        if parent != text:
            parent = self._parent[text] = self.root(parent)
        return parent

    def join(self, one: str, other: str) -> None:
        self._parent[self.root(one)] = self.root(other)


class _Builder:
    """Numbers the distinct texts as they are met and gives each its usage."""

    def __init__(self, rng: random.Random, shape: Shape, meanings: _Meanings) -> None:
        self._rng = rng
        self._shape = shape
        self._meanings = meanings
        self._ids: dict[str, int] = {}
        self._meaning_ids: dict[str, int] = {}
        self.questions: list[Question] = []

    def __contains__(self, text: str) -> bool:
        return text in self._ids

    def known(self, text: str) -> int:
        """The id of a text already met."""
        return self._ids[text]

    def id_of(self, text: str, source: Source) -> int:
        found = self._ids.get(text)
        if found is not None:
            return found
        new = self._ids[text] = len(self.questions)
        root = self._meanings.root(text)
        meaning = self._meaning_ids.setdefault(root, new)
        self.questions.append(
            Question(
                new,
                text,
                source,
                meaning,
                self._shape.prompt_tokens.draw(self._rng),
                self._shape.completion_tokens.draw(self._rng),
            )
        )
        return new


def _zipf_ranks(size: int, exponent: float, rng: random.Random) -> Iterator[int]:
    """Ranks 0..size-1 (0 the most asked), forever, by weight 1/(rank+1)^exponent."""
    cumulative = list(itertools.accumulate(1 / (k**exponent) for k in range(1, size + 1)))
    total = cumulative[-1]
    while True:
        yield min(size - 1, bisect.bisect_right(cumulative, rng.random() * total))


def generate(shape: Shape, seed: int, pairs: Sequence[LabelledPair] | None = None) -> Workload:
    """The workload of `shape` for `seed` over the labelled `pairs` (by default the file's)."""
    pairs = load_pairs() if pairs is None else pairs
    rng = random.Random(seed)
    meanings = _Meanings()
    for pair in pairs:
        if pair.same:
            meanings.join(pair.a, pair.b)
    pool = list(dict.fromkeys(pair.a for pair in pairs))
    rng.shuffle(pool)
    pooled = set(pool)
    # A `b` that is also in the pool is asked as a popular question, not as a paraphrase.
    paraphrases = [pair for pair in pairs if pair.b not in pooled]
    builder = _Builder(rng, shape, meanings)
    for text in pool:
        builder.id_of(text, "popular")
    for pair in paraphrases:
        builder.id_of(pair.b, "paraphrase")
    ranks = _zipf_ranks(len(pool), shape.zipf_exponent, rng)
    waiting: defaultdict[str, list[LabelledPair]] = defaultdict(list)  # by their `a`
    for pair in paraphrases:
        waiting[pair.a].append(pair)
    eligible: list[LabelledPair] = []  # paraphrases whose `a` was asked, in that order
    asks: list[int] = []
    paraphrase_below = shape.popular_share + shape.paraphrase_share
    for _ in range(shape.requests):
        draw = rng.random()
        if shape.popular_share <= draw < paraphrase_below and eligible:
            asks.append(builder.id_of(rng.choice(eligible).b, "paraphrase"))
        elif draw >= paraphrase_below:
            text = _unique_text(rng)
            while text in builder:
                text = _unique_text(rng)
            asks.append(builder.id_of(text, "unique"))
        else:
            text = pool[next(ranks)]
            eligible.extend(waiting.pop(text, ()))  # on its first ask
            asks.append(builder.id_of(text, "popular"))
    known = builder.known
    different = frozenset(frozenset((known(p.a), known(p.b))) for p in pairs if not p.same)
    return Workload(seed, shape, tuple(builder.questions), tuple(asks), different)
