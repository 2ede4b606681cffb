"""Precision of the semantic cache's decision over labelled question pairs.

A pair is a hit when the cosine of its embeddings is at least the threshold (0.95) and the
lexical guard lets it through. `tests/data/semantic_pairs.jsonl` labels each pair `same` (one
answer serves both) or not, with its `kind`; pairs marked `"set": "holdout"` were written after
the guard was tuned on the others and were not used to tune it. Precision (the share of hits
that are truly the same question) must stay at 0.98 or above; recall is reported (a miss costs
one upstream call, a wrong hit serves a wrong answer). The figures go to the test report as
user properties (`--junitxml`) and to the captured output (`-rP` shows them).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgeproxy.cache.embed import LocalMiniLM
from edgeproxy.cache.guard import Guard
from tests.support.requires import require_semantic

PAIRS = Path(__file__).parent.parent / "data" / "semantic_pairs.jsonl"
THRESHOLD = 0.95
KINDS = {"paraphrase", "negation", "entity", "number", "reversal", "unrelated", "near-topic"}


@dataclass(frozen=True, slots=True)
class Pair:
    a: str
    b: str
    same: bool
    kind: str
    set: str
    cosine: float
    refusal: str | None


def _load() -> list[dict[str, Any]]:
    return [json.loads(line) for line in PAIRS.read_text("utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def pairs() -> list[Pair]:
    require_semantic()
    rows = _load()
    loop = asyncio.new_event_loop()  # a private loop: no test's loop is touched
    try:
        vectors = loop.run_until_complete(
            LocalMiniLM().embed([text for row in rows for text in (row["a"], row["b"])])
        )
    finally:
        loop.close()
    guard = Guard()
    return [
        Pair(
            row["a"],
            row["b"],
            row["same"],
            row["kind"],
            row.get("set", "tuning"),
            float(vectors[2 * n] @ vectors[2 * n + 1]),
            guard.refusal(row["a"], row["b"]),
        )
        for n, row in enumerate(rows)
    ]


def score(pairs: list[Pair], threshold: float, guarded: bool) -> tuple[float, float, int]:
    """Precision, recall and the number of hits."""
    hits = [p for p in pairs if p.cosine >= threshold and not (guarded and p.refusal)]
    true = sum(p.same for p in hits)
    positives = sum(p.same for p in pairs)
    return (true / len(hits) if hits else 1.0), true / positives, len(hits)


def test_the_labelled_sample_is_large_balanced_and_well_formed() -> None:
    rows = _load()
    assert len(rows) >= 120
    assert {row["kind"] for row in rows} == KINDS
    assert all(row["same"] == (row["kind"] == "paraphrase") for row in rows)
    same = sum(row["same"] for row in rows)
    assert 0.4 <= same / len(rows) <= 0.6
    assert len({(row["a"], row["b"]) for row in rows}) == len(rows)
    assert all(row["a"] != row["b"] for row in rows)
    assert Counter(row.get("set", "tuning") for row in rows)["holdout"] >= 50


def test_semantic_hits_are_precise(pairs: list[Pair], record_property: Any) -> None:
    lines = []
    subsets = {"all": pairs, "holdout": [p for p in pairs if p.set == "holdout"]}
    for subset, chosen in subsets.items():
        for threshold in (0.90, 0.92, 0.95):
            for guarded in (False, True):
                precision, recall, hits = score(chosen, threshold, guarded)
                name = f"{subset}@{threshold:.2f}{'+guard' if guarded else ''}"
                record_property(f"{name}.precision", round(precision, 3))
                record_property(f"{name}.recall", round(recall, 3))
                lines.append(f"{name}: precision {precision:.3f} recall {recall:.3f} ({hits})")
    precision, recall, hits = score(pairs, THRESHOLD, guarded=True)
    summary = (
        f"semantic precision {precision:.3f}, recall {recall:.3f} ({hits} hits over "
        f"{len(pairs)} pairs, cosine >= {THRESHOLD} + lexical guard)"
    )
    print(summary, *lines, sep="\n")
    wrong = [
        f"{p.kind} {p.cosine:.3f}: {p.a!r} / {p.b!r}"
        for p in pairs
        if p.cosine >= THRESHOLD and not p.refusal and not p.same
    ]
    assert precision >= 0.98, f"{summary}; wrong hits: {wrong}"
    assert recall >= 0.3, f"{summary}: the guard refuses too much"  # a floor, not a goal


def test_every_question_passes_the_guard_against_itself(pairs: list[Pair]) -> None:
    guard = Guard()
    assert all(guard.allows(text, text) for p in pairs for text in (p.a, p.b))


@pytest.mark.parametrize("kind", ["negation", "entity", "number", "reversal"])
def test_no_pair_of_a_telling_kind_is_ever_a_hit(pairs: list[Pair], kind: str) -> None:
    """Negations, other names, other numbers and reversed relations: refused at any
    threshold, since their cosines run up to 0.999."""
    leaked = [p for p in pairs if p.kind == kind and p.refusal is None]
    assert not leaked, leaked
