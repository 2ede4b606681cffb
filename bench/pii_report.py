"""`python -m bench.pii_report`: how well and how fast the PII detector finds what it should.

Precision and recall per kind over the labelled corpus (tests/data/pii/corpus.jsonl: each
line a text and the values a person marks in it, in order, by kind; lines without values are
look-alikes that must stay clean; lines marked `"set": "holdout"` were written after the
detector was tuned on the others, and are reported apart too), and the cost: microseconds
per KB of a clean prompt, per KB of the corpus (short texts, most of them dense with values),
and per delta of a screened stream. A found value counts when it overlaps a labelled value of
its kind (each labelled value matches once); `exact` counts those whose span is the label's
exactly, since a partial span leaves part of a value in clear.

`--presidio` measures Presidio's pattern recognizers for the same kinds on the same corpus,
when presidio-analyzer is importable (it is not a dependency: docs/guardrails.md says how it
was run, and what was decided). Presidio has no recognizer for credentials.
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edgeproxy.security.pii import KINDS, Detector
from edgeproxy.security.pii_screen import StreamScreen

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "pii" / "corpus.jsonl"
# A typical prompt: prose with numbers, dates, versions, a path; no personal data.
PROSE = (
    "Please summarise the attached quarterly report for the board. Revenue grew 12% to $4.2M "
    "in Q3 2024, driven by 37 new enterprise customers; churn fell from 3.1% to 2.4%. The team "
    "shipped version 2.8.1 on 2024-09-14 and fixed 128 bugs. Our Python service (see "
    "src/app/main.py, line 42) still times out at 30 s when the queue holds more than 10,000 "
    "items. Write three bullet points, then a short paragraph on risks: hiring in Berlin and "
    "Austin, the migration to Postgres 16, and the contract renewal due on 1 March. "
)
CLEAN_KB = (PROSE * 3)[:1024]
DELTA = 4  # characters per streamed delta, about one token
# Presidio's entity names for the kinds both detect.
PRESIDIO_KINDS = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "credit_card",
    "IBAN_CODE": "iban",
    "US_SSN": "ssn",
    "IP_ADDRESS": "ip",
}

Span = tuple[str, int, int]  # kind, start, end
Finder = Callable[[str], list[Span]]


@dataclass(frozen=True)
class Sample:
    text: str
    expected: tuple[Span, ...]
    holdout: bool  # written after the detector was tuned, and never tuned on


@dataclass
class Tally:
    found: int = 0  # true positives
    exact: int = 0  # of those, spans equal to the label's
    extra: int = 0  # false positives
    missed: int = 0  # false negatives

    @property
    def precision(self) -> float:
        return self.found / (self.found + self.extra) if self.found + self.extra else 1.0

    @property
    def recall(self) -> float:
        return self.found / (self.found + self.missed) if self.found + self.missed else 1.0


@dataclass
class Score:
    kinds: dict[str, Tally] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)  # what went wrong, one line each

    def tally(self, kind: str) -> Tally:
        return self.kinds.setdefault(kind, Tally())

    @property
    def total(self) -> Tally:
        total = Tally()
        for tally in self.kinds.values():
            total.found += tally.found
            total.exact += tally.exact
            total.extra += tally.extra
            total.missed += tally.missed
        return total


def load(path: Path = CORPUS) -> list[Sample]:
    """The corpus, each labelled value located after the previous one."""
    samples = []
    for line in path.read_text("utf-8").splitlines():
        row = json.loads(line)
        spans: list[Span] = []
        at = 0
        for kind, value in row["expected"]:
            start = row["text"].index(value, at)
            at = start + len(value)
            spans.append((kind, start, at))
        samples.append(Sample(row["text"], tuple(spans), row.get("set") == "holdout"))
    return samples


def score(samples: Iterable[Sample], find: Finder, kinds: Iterable[str] = KINDS) -> Score:
    """Found values against labels of `kinds` (the kinds a detector claims to find)."""
    wanted = set(kinds)
    result = Score()
    for sample in samples:
        expected = [span for span in sample.expected if span[0] in wanted]
        for kind in wanted:
            result.tally(kind)
        unmatched = list(expected)
        for kind, start, end in find(sample.text):
            if kind not in wanted:
                continue
            label = next(
                (s for s in unmatched if s[0] == kind and s[1] < end and start < s[2]), None
            )
            if label is None:
                result.tally(kind).extra += 1
                result.misses.append(f"extra {kind} {sample.text[start:end]!r}")
                continue
            unmatched.remove(label)
            result.tally(kind).found += 1
            result.tally(kind).exact += (start, end) == label[1:]
        for kind, start, end in unmatched:
            result.tally(kind).missed += 1
            result.misses.append(f"missed {kind} {sample.text[start:end]!r}")
    return result


def detector_finder(detector: Detector) -> Finder:
    return lambda text: [(m.kind, m.start, m.end) for m in detector.find(text)]


def presidio_finder() -> Finder:
    """Presidio's recognizers for our kinds, called directly (no NLP engine: there is no
    language model here to load, and none is needed by pattern recognizers), every result
    kept, as the analyzer's default threshold of 0 keeps them."""
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UsSsnRecognizer,
    )

    recognizers = [
        EmailRecognizer(),
        PhoneRecognizer(),
        CreditCardRecognizer(),
        IbanRecognizer(),
        UsSsnRecognizer(),
        IpRecognizer(),
    ]
    entities = list(PRESIDIO_KINDS)

    def find(text: str) -> list[Span]:
        return [
            (PRESIDIO_KINDS[result.entity_type], result.start, result.end)
            for recognizer in recognizers
            for result in recognizer.analyze(text, entities, None)
        ]

    return find


def microseconds(run: Callable[[], object], number: int) -> float:
    """The best of five timings of `number` runs, per run."""
    return min(timeit.repeat(run, number=number, repeat=5)) / number * 1e6


def costs(find: Finder, samples: list[Sample], number: int) -> dict[str, float]:
    corpus_kb = sum(len(s.text) for s in samples) / 1024
    return {
        "us per clean KB": microseconds(lambda: find(CLEAN_KB), number),
        "us per corpus KB": microseconds(
            lambda: [find(s.text) for s in samples], max(1, number // 50)
        )
        / corpus_kb,
    }


def stream_cost(detector: Detector, number: int) -> float:
    """Microseconds per delta to screen a clean 1 KB answer streamed in `DELTA` characters."""
    deltas = [CLEAN_KB[i : i + DELTA] for i in range(0, len(CLEAN_KB), DELTA)]

    def run() -> None:
        screen = StreamScreen(detector, "redact")
        for delta in deltas:
            screen.feed(delta)
        screen.flush()

    return microseconds(run, max(1, number // 50)) / len(deltas)


def table(name: str, result: Score, timing: dict[str, float]) -> str:
    lines = [
        f"### {name}",
        "",
        "| kind | labelled | found | exact span | extra | precision | recall |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, tally in [*sorted(result.kinds.items()), ("all", result.total)]:
        lines.append(
            f"| {kind} | {tally.found + tally.missed} | {tally.found} | {tally.exact} | "
            f"{tally.extra} | {tally.precision:.3f} | {tally.recall:.3f} |"
        )
    lines += ["", *(f"- {label}: {value:.1f}" for label, value in timing.items())]
    if result.misses:
        lines += ["", "Errors:", *(f"- {miss}" for miss in result.misses)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pii_report", description=__doc__)
    parser.add_argument("--presidio", action="store_true", help="measure Presidio too")
    parser.add_argument("--number", type=int, default=2000, help="runs per timing")
    args = parser.parse_args(argv)
    samples = load()
    detector = Detector(KINDS)
    ours = detector_finder(detector)
    timing = costs(ours, samples, args.number)
    timing["us per streamed delta"] = stream_cost(detector, args.number)
    print(f"{len(samples)} texts, {sum(len(s.expected) for s in samples)} labelled values\n")
    print(table("edgeproxy", score(samples, ours), timing))
    holdout = [sample for sample in samples if sample.holdout]
    print()
    print(table("edgeproxy, the holdout texts only", score(holdout, ours), {}))
    if args.presidio:
        theirs = presidio_finder()
        pii_kinds = set(PRESIDIO_KINDS.values())
        like_for_like = detector_finder(Detector(pii_kinds))
        print()
        print(table("edgeproxy, the same kinds", score(samples, like_for_like, pii_kinds), {}))
        print()
        print(table("Presidio", score(samples, theirs, pii_kinds), costs(theirs, samples, 200)))


if __name__ == "__main__":
    main()
