"""`python -m bench.injection_report`: what the prompt-injection rules catch, what they flag by
mistake, and what they cost per prompt, on the labelled set in tests/data/injection/.

Every line of every `*.jsonl` there is screened once by `InjectionRules()` (the default
threshold, or `--threshold`). The report gives, per split and per file, precision, recall and
the false-positive rate; per attack family its recall, per benign family its false-positive
rate. Latency: each text is screened `--repeat` times and its median kept; the report gives
the p50 and p99 of those medians over all texts and over the typical prompts (100 to 600
characters). With `--classifier` (the `semantic` extra installed) it also reports the optional
embedding classifier (edgeproxy/security/injection_classifier.py) alone and OR-ed with the
rules, and its latency. It is a report, not a gate: the targets are asserted by
tests/security/test_injection.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeproxy.security.injection import DEFAULT_THRESHOLD, InjectionRules

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "injection"
TYPICAL = range(100, 601)  # characters of a typical prompt


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    attack: bool
    family: str
    split: str
    source: str  # the file it came from


@dataclass(slots=True)
class Tally:
    """Attacks caught and benign prompts flagged, out of how many."""

    attacks: int = 0
    caught: int = 0
    benign: int = 0
    flagged: int = 0

    def add(self, attack: bool, flagged: bool) -> None:
        if attack:
            self.attacks += 1
            self.caught += flagged
        else:
            self.benign += 1
            self.flagged += flagged

    @property
    def recall(self) -> float | None:
        return self.caught / self.attacks if self.attacks else None

    @property
    def false_positive_rate(self) -> float | None:
        return self.flagged / self.benign if self.benign else None

    @property
    def precision(self) -> float | None:
        raised = self.caught + self.flagged
        return self.caught / raised if raised else None


def load(directory: Path = DATA) -> list[Sample]:
    samples = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                attack = row["label"] == "attack"
                samples.append(Sample(row["text"], attack, row["family"], row["split"], path.name))
    return samples


def tally(samples: Iterable[Sample], flagged: Sequence[bool], key: str) -> dict[str, Tally]:
    """Tallies grouped by `key` ("split", "source" or "family"), plus "all"."""
    groups: defaultdict[str, Tally] = defaultdict(Tally)
    for sample, raised in zip(samples, flagged, strict=True):
        groups[getattr(sample, key)].add(sample.attack, raised)
        groups["all"].add(sample.attack, raised)
    return dict(sorted(groups.items()))


def latencies_us(rules: InjectionRules, texts: Sequence[str], repeat: int) -> list[float]:
    """Each text's median screening time in microseconds."""
    medians = []
    for text in texts:
        runs = []
        for _ in range(repeat):
            started = time.perf_counter_ns()
            rules.screen(text)
            runs.append(time.perf_counter_ns() - started)
        medians.append(statistics.median(runs) / 1000)
    return medians


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def table(title: str, groups: dict[str, Tally]) -> list[str]:
    lines = [
        f"### {title}",
        "",
        "| group | attacks | caught | recall | benign | flagged | FPR | precision |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, counts in groups.items():
        lines.append(
            f"| {name} | {counts.attacks} | {counts.caught} | {_rate(counts.recall)} | "
            f"{counts.benign} | {counts.flagged} | {_rate(counts.false_positive_rate)} | "
            f"{_rate(counts.precision)} |"
        )
    return [*lines, ""]


def report(samples: Sequence[Sample], rules: InjectionRules, repeat: int) -> str:
    flagged = [rules.screen(sample.text).flagged for sample in samples]
    lines = [f"## Prompt-injection rules (threshold {rules.threshold})", ""]
    lines += table("By split", tally(samples, flagged, "split"))
    lines += table("By file", tally(samples, flagged, "source"))
    attacks = [(s, f) for s, f in zip(samples, flagged, strict=True) if s.attack]
    benign = [(s, f) for s, f in zip(samples, flagged, strict=True) if not s.attack]
    for title, chosen in (("Attack families", attacks), ("Benign families", benign)):
        lines += table(title, tally([s for s, _ in chosen], [f for _, f in chosen], "family"))
    every = latencies_us(rules, [s.text for s in samples], repeat)
    typical = [t for s, t in zip(samples, every, strict=True) if len(s.text) in TYPICAL]
    lines += ["### Latency per prompt (median of each text's runs)", ""]
    for name, values in (("all texts", every), ("100-600 characters", typical)):
        if not values:
            continue
        lines.append(
            f"- {name} ({len(values)}): p50 {percentile(values, 0.5):.0f} µs, "
            f"p99 {percentile(values, 0.99):.0f} µs, max {max(values):.0f} µs"
        )
    return "\n".join(lines)


def classifier_report(samples: Sequence[Sample], rules: InjectionRules) -> str:
    """The embedding classifier alone and OR-ed with the rules (needs the semantic extra)."""
    from edgeproxy.cache.embed import LocalMiniLM
    from edgeproxy.security.injection_classifier import InjectionClassifier

    embedder = LocalMiniLM()
    classifier = InjectionClassifier(embedder)
    vectors = asyncio.run(embedder.embed([sample.text for sample in samples]))
    scores = [classifier.score_vector(vector) for vector in vectors]
    alone = [score >= classifier.threshold for score in scores]
    ruled = [rules.screen(sample.text).flagged for sample in samples]
    either = [a or b for a, b in zip(alone, ruled, strict=True)]
    lines = [f"## Embedding classifier (threshold {classifier.threshold}, fit on dev only)", ""]
    lines += table("Classifier alone, by split", tally(samples, alone, "split"))
    lines += table("Classifier alone, by file", tally(samples, alone, "source"))
    lines += table("Rules or classifier, by split", tally(samples, either, "split"))
    started = time.perf_counter()
    for sample in samples[:100]:
        asyncio.run(classifier.score(sample.text))
    per_text_ms = (time.perf_counter() - started) * 1000 / min(100, len(samples))
    lines.append(f"Classifier latency: {per_text_ms:.1f} ms per text (one text per call).")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--repeat", type=int, default=15, help="screenings per text for timing")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--classifier", action="store_true", help="also the embedding classifier")
    args = parser.parse_args(argv)
    samples, rules = load(args.data), InjectionRules(args.threshold)
    print(report(samples, rules, args.repeat))
    if args.classifier:
        print("\n" + classifier_report(samples, rules))


if __name__ == "__main__":
    main()
