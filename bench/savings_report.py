"""The savings report's arithmetic: what the proxy's metrics say, set against what the workload,
the client and the upstream saw. Pure: no I/O.

Three independent accounts of one run meet here:

- the proxy's `/metrics` (summed over its replicas): answers by cache layer
  (`edgeproxy_requests_total{cache}`), dollars spent (`edgeproxy_cost_usd_total`) and saved
  (`edgeproxy_cache_saved_usd_total`);
- the client: each answer's `x-edgeproxy-cache` and the question its text was written for;
- the upstream: how many times it was asked each question.

Dollars by hand, at the pricing table's rates per million tokens and the workload's token
counts: spent is the usage of every upstream call; what the answers were worth is the usage of
the question each answer was written for, summed over all answers; saved is worth less spent
(what was delivered without being paid for). Neither needs the proxy's word. Without a cache,
every request would have been answered at its own question's usage.

A semantic hit is judged by the workload's labels (`judge`): right when the answer served was
written for a question of the same meaning, wrong when the labels call the two look-alikes
that differ or one is a unique question, unjudged when the labels do not relate them; the
precision is given over the judged hits, and as a lower bound with every unjudged hit taken
for wrong. An exact answer (hit-l1, hit-l2, coalesced, miss) written for
another question than the one asked is a bug, counted as `exact_mismatches`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from prometheus_client.parser import text_string_to_metric_families

from bench.savings_workload import Question, Workload
from edgeproxy.pricing import ModelPrice

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]

LAYERS: Final = ("hit-l1", "hit-l2", "hit-semantic", "coalesced", "miss")
FREE: Final = frozenset({"hit-l1", "hit-l2", "hit-semantic", "coalesced"})
NO_HEADER: Final = "(none)"
_PER_MILLION: Final = 1_000_000
_NANO: Final = 1e-9  # the proxy rounds each answer's cost to nano-dollars
_EXAMPLES: Final = 10  # wrong and unjudged semantic hits shown


@dataclass(frozen=True, slots=True)
class Answer:
    """What the client saw for one request of the workload."""

    index: int  # the request's position in the workload
    status: int
    cache: str  # x-edgeproxy-cache, NO_HEADER when absent
    served: int | None  # the question the answer's text was written for


def sum_scrapes(texts: Iterable[str]) -> Samples:
    """Prometheus text expositions (one a replica) added sample by sample."""
    samples: Samples = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                samples[key] = samples.get(key, 0.0) + sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= set(have))


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """`name`'s samples summed per value of `label`."""
    out: dict[str, float] = {}
    for (n, have), value in samples.items():
        if n == name:
            key = dict(have).get(label)
            if key is not None:
                out[key] = out.get(key, 0.0) + value
    return out


def usd(price: ModelPrice, question: Question) -> float:
    """What one answer to `question` costs at `price` (US dollars per million tokens)."""
    return (
        question.prompt_tokens * price.input + question.completion_tokens * price.output
    ) / _PER_MILLION


@dataclass(frozen=True, slots=True)
class Layer:
    answers: int  # as the metrics count them
    share: float  # of the answered requests
    seen: int  # as the client's x-edgeproxy-cache counted them


@dataclass(frozen=True, slots=True)
class Money:
    spent_metrics: float
    spent_by_hand: float
    saved_metrics: float
    saved_by_hand: float
    without_cache: float  # every request answered upstream at its own question's usage

    @property
    def saved_share(self) -> float:
        worth = self.spent_metrics + self.saved_metrics
        return self.saved_metrics / worth if worth else 0.0


Verdict = Literal["right", "wrong", "unjudged"]


@dataclass(frozen=True, slots=True)
class Semantic:
    """The semantic layer's hits, judged by the labels (see `judge`)."""

    right: int
    wrong: int
    labelled_apart: int  # of the wrong: a pair the labels call look-alikes that differ
    unjudged: int
    events: dict[str, int]  # edgeproxy_cache_semantic_total by event
    examples: dict[str, list[tuple[str, str]]]  # verdict -> (asked, answered), the first few

    @property
    def hits(self) -> int:
        return self.right + self.wrong + self.unjudged

    @property
    def precision(self) -> float | None:
        """Of the hits the labels judge, the right ones."""
        judged = self.right + self.wrong
        return self.right / judged if judged else None

    @property
    def precision_at_least(self) -> float | None:
        """Of all hits, the right ones: the precision were every unjudged hit wrong."""
        return self.right / self.hits if self.hits else None


def judge(workload: Workload, asked: Question, served: Question | None) -> Verdict:
    """Right: the labels make the two mean the same. Wrong: the labels call them look-alikes
    that differ, or one is a unique question (its slots, a number or a name, make it unlike any
    other text), or the answer names no question. Otherwise the labels do not relate the two
    (two questions of the labelled set, each from a different pair): unjudged."""
    if served is None:
        return "wrong"
    if served.meaning == asked.meaning:
        return "right"
    if "unique" in (asked.source, served.source) or workload.labelled_apart(asked.id, served.id):
        return "wrong"
    return "unjudged"


@dataclass(frozen=True, slots=True)
class SavingsReport:
    planned: int  # the workload's requests
    issued: int  # fewer when the time bound stopped the replay
    answered: int  # status 200
    failed: int
    layers: dict[str, Layer]
    upstream_calls: int  # the upstream's own counter
    deployment_requests: int  # edgeproxy_deployment_requests_total
    avoided: int  # answered less upstream calls
    avoided_by_metrics: int  # the metrics' cache and coalesced answers
    money: Money
    semantic: Semantic
    paraphrases: dict[str, dict[str, int]]  # label (same, different) -> cache status -> asks
    exact_mismatches: int
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "issued": self.issued,
            "answered": self.answered,
            "failed": self.failed,
            "layers": {
                name: {"answers": x.answers, "share": x.share, "seen": x.seen}
                for name, x in self.layers.items()
            },
            "hit_rate": sum(x.share for name, x in self.layers.items() if name in FREE),
            "upstream_calls": self.upstream_calls,
            "deployment_requests": self.deployment_requests,
            "avoided": self.avoided,
            "avoided_by_metrics": self.avoided_by_metrics,
            "money_usd": {
                "spent_metrics": self.money.spent_metrics,
                "spent_by_hand": self.money.spent_by_hand,
                "saved_metrics": self.money.saved_metrics,
                "saved_by_hand": self.money.saved_by_hand,
                "without_cache": self.money.without_cache,
                "saved_share": self.money.saved_share,
            },
            "semantic": {
                "hits": self.semantic.hits,
                "right": self.semantic.right,
                "wrong": self.semantic.wrong,
                "labelled_apart": self.semantic.labelled_apart,
                "unjudged": self.semantic.unjudged,
                "precision": self.semantic.precision,
                "precision_at_least": self.semantic.precision_at_least,
                "events": self.semantic.events,
                "examples": self.semantic.examples,
            },
            "paraphrases": self.paraphrases,
            "exact_mismatches": self.exact_mismatches,
            "problems": self.problems,
        }


def build(
    workload: Workload,
    answers: Iterable[Answer],
    upstream_calls: Mapping[int, int],
    samples: Samples,
    price: ModelPrice,
) -> SavingsReport:
    """The report of one run: `answers` of the requests issued, `upstream_calls` by question
    id, `samples` the summed scrapes, `price` the model's."""
    answers = list(answers)
    ok = [a for a in answers if a.status == 200]
    seen = Counter(a.cache for a in ok)
    per_layer = by_label(samples, "edgeproxy_requests_total", "cache")
    layers = {
        name: Layer(
            int(per_layer.get(name, 0)),
            per_layer.get(name, 0) / len(ok) if ok else 0.0,
            seen[name],
        )
        for name in LAYERS
    }
    calls = sum(upstream_calls.values())
    questions = workload.questions
    spent_by_hand = sum(n * usd(price, questions[q]) for q, n in upstream_calls.items())
    worth = sum(usd(price, questions[a.served]) for a in ok if a.served is not None)
    money = Money(
        spent_metrics=total(samples, "edgeproxy_cost_usd_total"),
        spent_by_hand=spent_by_hand,
        saved_metrics=total(samples, "edgeproxy_cache_saved_usd_total"),
        saved_by_hand=worth - spent_by_hand,
        without_cache=sum(usd(price, workload.asked(a.index)) for a in ok),
    )
    report = SavingsReport(
        planned=len(workload.asks),
        issued=len(answers),
        answered=len(ok),
        failed=len(answers) - len(ok),
        layers=layers,
        upstream_calls=calls,
        deployment_requests=int(total(samples, "edgeproxy_deployment_requests_total")),
        avoided=len(ok) - calls,
        avoided_by_metrics=sum(layers[name].answers for name in FREE),
        money=money,
        semantic=_semantic(workload, ok, samples),
        paraphrases=_paraphrases(workload, ok),
        exact_mismatches=sum(
            1 for a in ok if a.cache != "hit-semantic" and a.served != workload.asks[a.index]
        ),
    )
    report.problems.extend(_problems(report, seen))
    return report


def _semantic(workload: Workload, ok: list[Answer], samples: Samples) -> Semantic:
    verdicts: Counter[Verdict] = Counter()
    apart = 0
    examples: dict[str, list[tuple[str, str]]] = {"wrong": [], "unjudged": []}
    for answer in ok:
        if answer.cache != "hit-semantic":
            continue
        asked = workload.asked(answer.index)
        served = None if answer.served is None else workload.questions[answer.served]
        verdict = judge(workload, asked, served)
        verdicts[verdict] += 1
        if served is not None and workload.labelled_apart(asked.id, served.id):
            apart += 1
        shown = examples.get(verdict)
        if shown is not None and len(shown) < _EXAMPLES:
            shown.append((asked.text, "(no question)" if served is None else served.text))
    events = by_label(samples, "edgeproxy_cache_semantic_total", "event")
    return Semantic(
        verdicts["right"],
        verdicts["wrong"],
        apart,
        verdicts["unjudged"],
        {k: int(v) for k, v in sorted(events.items())},
        examples,
    )


def _paraphrases(workload: Workload, ok: list[Answer]) -> dict[str, dict[str, int]]:
    """How the paraphrase asks were answered, apart for the labels `same` and `different`."""
    out: dict[str, Counter[str]] = {"same": Counter(), "different": Counter()}
    for answer in ok:
        asked = workload.asked(answer.index)
        if asked.source != "paraphrase":
            continue
        label = "same" if asked.meaning != asked.id else "different"
        out[label][answer.cache] += 1
    return {label: dict(counts.most_common()) for label, counts in out.items()}


def _problems(report: SavingsReport, seen: Counter[str]) -> list[str]:
    """Where the accounts disagree: each a sentence; none when the run adds up."""
    problems = []
    if report.failed:
        problems.append(f"{report.failed} requests were not answered with 200")
    counted = sum(x.answers for x in report.layers.values())
    if counted != report.answered:
        problems.append(
            f"the metrics count {counted} answers by cache layer, the client got {report.answered}"
        )
    for name, layer in report.layers.items():
        if layer.answers != layer.seen:
            problems.append(f"{name}: {layer.answers} in the metrics, {layer.seen} seen")
    others = {k: v for k, v in seen.items() if k not in report.layers}
    if others:
        problems.append(f"answers with other x-edgeproxy-cache values: {others}")
    if report.avoided != report.avoided_by_metrics:
        problems.append(
            f"upstream calls avoided: {report.avoided} by the upstream's count, "
            f"{report.avoided_by_metrics} by the metrics"
        )
    if report.deployment_requests != report.upstream_calls:
        problems.append(
            f"the metrics count {report.deployment_requests} upstream requests, "
            f"the upstream {report.upstream_calls}"
        )
    tolerance = _NANO * (report.answered + 1)
    money = report.money
    for what, metric, hand in (
        ("spent", money.spent_metrics, money.spent_by_hand),
        ("saved", money.saved_metrics, money.saved_by_hand),
    ):
        if abs(metric - hand) > tolerance:
            problems.append(f"{what}: ${metric:.9f} in the metrics, ${hand:.9f} by hand")
    if report.exact_mismatches:
        problems.append(
            f"{report.exact_mismatches} exact answers were written for another question"
        )
    return problems


def _usd(value: float) -> str:
    return f"${value:,.4f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def markdown(report: SavingsReport, title: str) -> str:
    """The report as markdown tables, for stdout and docs/benchmarks.md."""
    stopped = report.issued < report.planned
    lines = [
        f"### {title}",
        "",
        f"{report.answered:,} of {report.issued:,} requests answered"
        + (f", {report.failed:,} failed" if report.failed else "")
        + (f" (the time bound stopped the replay: {report.planned:,} planned)" if stopped else "")
        + f"; upstream called {report.upstream_calls:,} times, "
        f"{report.avoided:,} calls avoided ({_pct(_share(report.avoided, report.answered))}).",
        "",
        "| answered by | requests (metrics) | share | seen by the client |",
        "|---|---:|---:|---:|",
    ]
    for name, layer in report.layers.items():
        lines.append(f"| {name} | {layer.answers:,} | {_pct(layer.share)} | {layer.seen:,} |")
    money = report.money
    lines += [
        "",
        "| US dollars | metrics | by hand |",
        "|---|---:|---:|",
        f"| spent (upstream calls) | {_usd(money.spent_metrics)} | {_usd(money.spent_by_hand)} |",
        f"| saved (cache answers) | {_usd(money.saved_metrics)} | {_usd(money.saved_by_hand)} |",
        f"| without the cache | | {_usd(money.without_cache)} |",
        f"| saved share | {_pct(money.saved_share)} | |",
        "",
    ]
    semantic = report.semantic
    lines += [
        "| semantic hits | right | wrong | of which labelled look-alikes | unjudged "
        "| precision (judged) | precision (unjudged as wrong) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {semantic.hits:,} | {semantic.right:,} | {semantic.wrong:,} "
        f"| {semantic.labelled_apart:,} | {semantic.unjudged:,} | {_pct(semantic.precision)} "
        f"| {_pct(semantic.precision_at_least)} |",
        "",
    ]
    for label, counts in report.paraphrases.items():
        shown = ", ".join(f"{k} {v:,}" for k, v in counts.items()) or "none asked"
        lines.append(f"- paraphrases labelled {label}: {shown}")
    if semantic.events:
        lines.append(
            "- semantic layer events: "
            + ", ".join(f"{k} {v:,}" for k, v in semantic.events.items())
        )
    for verdict, pairs in semantic.examples.items():
        lines += [f"- {verdict} hit: {a!r} answered as {b!r}" for a, b in pairs]
    lines.append("")
    if report.problems:
        lines += ["**The accounts disagree:**", ""] + [f"- {p}" for p in report.problems]
    else:
        lines.append("Metrics, client, upstream and the hand computation agree.")
    return "\n".join(lines) + "\n"


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None
