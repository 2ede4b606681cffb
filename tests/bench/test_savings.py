"""The savings report: its workload's shape, its arithmetic on a scripted run, and one small run
through the real proxy whose report adds up. The full report is `make savings`."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import orjson
import pytest
import yaml

from bench import savings
from bench.savings_report import (
    Answer,
    Samples,
    build,
    judge,
    markdown,
    sum_scrapes,
    total,
    usd,
)
from bench.savings_upstream import PricedUpstream, answer_text, answered_question
from bench.savings_workload import LabelledPair, Question, Shape, Workload, generate, load_pairs
from edgeproxy.config import parse
from edgeproxy.pricing import ModelPrice

PAIRS = load_pairs()


def _sources(workload: Workload) -> Counter[str]:
    return Counter(workload.asked(i).source for i in range(len(workload.asks)))


# the workload


def test_the_same_seed_gives_the_same_workload_and_another_seed_another() -> None:
    shape = Shape(requests=500)
    assert generate(shape, 7, PAIRS) == generate(shape, 7, PAIRS)
    assert generate(shape, 7, PAIRS).asks != generate(shape, 8, PAIRS).asks


def test_popular_questions_are_asked_by_a_zipf_law_over_the_pool() -> None:
    shape = Shape(requests=20_000, popular_share=1.0, paraphrase_share=0.0, zipf_exponent=1.1)
    workload = generate(shape, 3, PAIRS)
    pool = len({pair.a for pair in PAIRS})
    weights = [1 / k**1.1 for k in range(1, pool + 1)]
    expected = [w / sum(weights) for w in weights[:5]]
    counts = sorted(Counter(workload.asks).values(), reverse=True)
    observed = [c / shape.requests for c in counts[:5]]
    assert observed == pytest.approx(expected, abs=0.01)
    assert _sources(workload) == {"popular": shape.requests}


def test_requests_are_mixed_by_the_shapes_shares() -> None:
    shape = Shape(requests=6000, popular_share=0.5, paraphrase_share=0.2)
    sources = _sources(generate(shape, 1, PAIRS))
    assert sources["popular"] / shape.requests == pytest.approx(0.5, abs=0.03)
    assert sources["paraphrase"] / shape.requests == pytest.approx(0.2, abs=0.03)
    assert sources["unique"] / shape.requests == pytest.approx(0.3, abs=0.03)


def test_a_paraphrase_is_asked_only_after_the_question_it_is_labelled_against() -> None:
    workload = generate(Shape(requests=3000), 5, PAIRS)
    asked: list[Question] = []
    for index in range(len(workload.asks)):
        question = workload.asked(index)
        if question.source == "paraphrase":
            assert any(
                q.source == "popular"
                and (q.meaning == question.meaning or workload.labelled_apart(q.id, question.id))
                for q in asked
            ), question.text
        asked.append(question)


def test_unique_questions_are_asked_once_and_every_text_is_distinct() -> None:
    workload = generate(Shape(requests=3000), 2, PAIRS)
    counts = Counter(workload.asks)
    uniques = [q for q in workload.questions if q.source == "unique"]
    assert uniques and all(counts[q.id] == 1 for q in uniques)
    texts = [q.text for q in workload.questions]
    assert len(set(texts)) == len(texts)


def test_labels_decide_which_texts_share_a_meaning() -> None:
    pairs = [
        LabelledPair("How do I reset my password?", "How can I reset my password?", True, "p"),
        LabelledPair("How do I enable alerts?", "How do I disable alerts?", False, "negation"),
    ]
    workload = generate(Shape(requests=0), 1, pairs)
    by_text = {q.text: q for q in workload.questions}
    reset, reset_too = by_text[pairs[0].a], by_text[pairs[0].b]
    enable, disable = by_text[pairs[1].a], by_text[pairs[1].b]
    assert reset.meaning == reset_too.meaning
    assert enable.meaning != disable.meaning
    assert workload.labelled_apart(enable.id, disable.id)
    assert not workload.labelled_apart(reset.id, reset_too.id)


def test_every_text_has_fixed_token_counts_within_the_shapes_bounds() -> None:
    shape = Shape(requests=3000)
    workload = generate(shape, 4, PAIRS)
    prompts = sorted(q.prompt_tokens for q in workload.questions)
    completions = sorted(q.completion_tokens for q in workload.questions)
    assert shape.prompt_tokens.low <= prompts[0] and prompts[-1] <= shape.prompt_tokens.high
    assert shape.completion_tokens.low <= completions[0]
    assert completions[-1] <= shape.completion_tokens.high
    middle = len(prompts) // 2
    assert prompts[middle] == pytest.approx(shape.prompt_tokens.median, rel=0.2)
    assert completions[middle] == pytest.approx(shape.completion_tokens.median, rel=0.2)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"requests": -1}, "requests"),
        ({"popular_share": 0.9, "paraphrase_share": 0.2}, "shares"),
        ({"popular_share": -0.1}, "shares"),
        ({"zipf_exponent": 0.0}, "Zipf"),
    ],
)
def test_a_shape_out_of_range_is_refused(fields: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Shape(**fields)  # type: ignore[arg-type]


def test_an_answer_names_the_question_it_was_written_for() -> None:
    text = answer_text(42, 5)
    assert answered_question(text) == 42
    assert len(text.split()) == 5
    assert answered_question("no tag here") is None


# the report's arithmetic on a scripted run

PRICE = ModelPrice(2.0, 10.0, None, None, "test", "2026-01-01")
RESET, RESET_TOO, ENABLE, DISABLE, UNIQUE = range(5)
SCRIPTED = Workload(
    seed=0,
    shape=Shape(requests=7),
    questions=(
        Question(RESET, "How do I reset my password?", "popular", RESET, 1000, 500),
        Question(RESET_TOO, "How can I reset my password?", "paraphrase", RESET, 1100, 400),
        Question(ENABLE, "How do I enable alerts?", "popular", ENABLE, 200, 100),
        Question(DISABLE, "How do I disable alerts?", "paraphrase", DISABLE, 300, 50),
        Question(UNIQUE, "What is 12 multiplied by 37?", "unique", UNIQUE, 100, 10),
    ),
    asks=(RESET, RESET, RESET_TOO, ENABLE, DISABLE, UNIQUE, RESET),
    labelled_different=frozenset({frozenset({ENABLE, DISABLE})}),
)
ANSWERS = [
    Answer(0, 200, "miss", RESET),
    Answer(1, 200, "hit-l1", RESET),
    Answer(2, 200, "hit-semantic", RESET),  # right: the labels say they mean the same
    Answer(3, 200, "miss", ENABLE),
    Answer(4, 200, "hit-semantic", ENABLE),  # wrong: labelled look-alikes
    Answer(5, 200, "miss", UNIQUE),
    Answer(6, 200, "hit-l2", RESET),
]
CALLS = {RESET: 1, ENABLE: 1, UNIQUE: 1}
# At $2 / $10 per million tokens: RESET $0.007, RESET_TOO $0.0062, ENABLE $0.0014,
# DISABLE $0.0011, UNIQUE $0.0003.
SPENT = 0.007 + 0.0014 + 0.0003
WORTH = 4 * 0.007 + 2 * 0.0014 + 0.0003


def _exposition(
    replica: str, *, misses: int, l1: int, l2: int, semantic: int, cost: float, saved: float
) -> str:
    labels = 'route="chat",model_group="m",provider="up",status="200"'
    return f"""\
# TYPE edgeproxy_requests_total counter
edgeproxy_requests_total{{{labels},cache="miss"}} {misses}
edgeproxy_requests_total{{{labels},cache="hit-l1"}} {l1}
edgeproxy_requests_total{{{labels},cache="hit-l2"}} {l2}
edgeproxy_requests_total{{{labels},cache="hit-semantic"}} {semantic}
# TYPE edgeproxy_cost_usd_total counter
edgeproxy_cost_usd_total{{model_group="m",provider="up"}} {cost}
# TYPE edgeproxy_cache_saved_usd_total counter
edgeproxy_cache_saved_usd_total{{model_group="m"}} {saved}
# TYPE edgeproxy_deployment_requests_total counter
edgeproxy_deployment_requests_total{{deployment="{replica}"}} {misses}
# TYPE edgeproxy_cache_semantic_total counter
edgeproxy_cache_semantic_total{{event="hits"}} {semantic}
"""


def _scripted_samples(saved: float = WORTH - SPENT) -> Samples:
    """Two replicas' scrapes that add up to the scripted run."""
    return sum_scrapes(
        [
            _exposition("a", misses=2, l1=1, l2=0, semantic=1, cost=0.0084, saved=0.007),
            _exposition(
                "a", misses=1, l1=0, l2=1, semantic=1, cost=SPENT - 0.0084, saved=saved - 0.007
            ),
        ]
    )


def test_scrapes_of_replicas_add_up_sample_by_sample() -> None:
    samples = _scripted_samples()
    assert total(samples, "edgeproxy_requests_total") == 7
    assert total(samples, "edgeproxy_requests_total", cache="hit-semantic") == 2
    assert total(samples, "edgeproxy_deployment_requests_total", deployment="a") == 3


def test_the_report_of_a_scripted_run() -> None:
    report = build(SCRIPTED, ANSWERS, CALLS, _scripted_samples(), PRICE)
    assert report.problems == []
    assert (report.answered, report.failed, report.upstream_calls) == (7, 0, 3)
    assert report.avoided == report.avoided_by_metrics == 4
    shares = {name: (layer.answers, layer.seen) for name, layer in report.layers.items()}
    assert shares == {
        "hit-l1": (1, 1),
        "hit-l2": (1, 1),
        "hit-semantic": (2, 2),
        "coalesced": (0, 0),
        "miss": (3, 3),
    }
    assert report.layers["miss"].share == pytest.approx(3 / 7)
    money = report.money
    assert money.spent_by_hand == pytest.approx(SPENT)
    assert money.saved_by_hand == pytest.approx(WORTH - SPENT)
    assert money.without_cache == pytest.approx(3 * 0.007 + 0.0062 + 0.0014 + 0.0011 + 0.0003)
    assert money.saved_share == pytest.approx((WORTH - SPENT) / WORTH)
    semantic = report.semantic
    assert (semantic.hits, semantic.right, semantic.wrong, semantic.labelled_apart) == (2, 1, 1, 1)
    assert semantic.precision == 0.5
    assert semantic.events == {"hits": 2}
    assert report.paraphrases == {"same": {"hit-semantic": 1}, "different": {"hit-semantic": 1}}
    assert report.exact_mismatches == 0
    shown = markdown(report, "scripted")
    assert "| hit-semantic | 2 | 28.6 % | 2 |" in shown
    assert "agree" in shown


def test_usd_is_tokens_at_the_rates_per_million() -> None:
    assert usd(PRICE, SCRIPTED.questions[RESET]) == pytest.approx(0.007)


@pytest.mark.parametrize(
    ("answers", "calls", "saved", "problem"),
    [
        ([*ANSWERS[:-1], Answer(6, 502, "(none)", None)], CALLS, None, "not answered"),
        ([*ANSWERS[:-1], Answer(6, 200, "hit-l1", RESET)], CALLS, None, "hit-l2: 1 in the"),
        (ANSWERS, {**CALLS, RESET: 2}, None, "avoided"),
        (ANSWERS, CALLS, 0.02, "saved"),
        ([*ANSWERS[:-1], Answer(6, 200, "hit-l2", ENABLE)], CALLS, None, "another question"),
    ],
    ids=["failed", "layer", "upstream", "dollars", "exact-mismatch"],
)
def test_the_report_names_where_the_accounts_disagree(
    answers: list[Answer], calls: dict[int, int], saved: float | None, problem: str
) -> None:
    samples = _scripted_samples() if saved is None else _scripted_samples(saved)
    report = build(SCRIPTED, answers, calls, samples, PRICE)
    assert any(problem in p for p in report.problems), report.problems


@pytest.mark.parametrize(
    ("asked", "served", "verdict"),
    [
        (RESET_TOO, RESET, "right"),
        (DISABLE, ENABLE, "wrong"),
        (UNIQUE, RESET, "wrong"),
        (ENABLE, RESET, "unjudged"),
        (RESET, None, "wrong"),
    ],
)
def test_a_semantic_hit_is_judged_by_the_labels(
    asked: int, served: int | None, verdict: str
) -> None:
    questions = SCRIPTED.questions
    found = None if served is None else questions[served]
    assert judge(SCRIPTED, questions[asked], found) == verdict


# the proxy and the request


def test_a_replica_prices_its_model_and_caches_in_the_layers_it_is_given() -> None:
    setup = savings.Setup("gpt-4o-mini", 2, None, True, 8, 60.0, 0.0)
    config = parse(yaml.safe_load(savings.proxy_config(8123, 8124, "http://up", setup)), {})
    assert config.cache.enabled and not config.cache.redis.enabled
    assert config.cache.semantic.mode == "serve"
    (group,) = config.models
    assert group.name == "gpt-4o-mini"
    assert savings.price_of("gpt-4o-mini").input > 0


def test_a_request_carries_the_usage_the_upstream_reports() -> None:
    workload = generate(Shape(requests=5), 1, PAIRS)
    body = orjson.loads(savings.request_body(workload, 0, "gpt-4o-mini"))
    question = workload.asked(0)
    assert body["messages"][-1] == {"role": "user", "content": question.text}
    assert body["metadata"] == {
        "question": str(question.id),
        "prompt_tokens": str(question.prompt_tokens),
        "completion_tokens": str(question.completion_tokens),
    }


def test_a_small_run_through_the_proxy_adds_up(tmp_path: Path) -> None:
    shape = Shape(requests=60)
    options = savings.Options(
        shape, concurrency=4, upstream_latency=0.0, redis=False, semantic=False
    )
    workload = generate(shape, 1, PAIRS)
    setup, report = savings.run(options, workload, tmp_path)
    assert (setup.replicas, setup.l2, setup.semantic) == (1, None, False)
    assert report.problems == []
    assert report.answered == report.issued == 60
    layers = report.layers
    assert layers["hit-l1"].answers > 0 and layers["miss"].answers == report.upstream_calls
    assert sum(layer.answers for layer in layers.values()) == 60
    assert report.money.spent_metrics == pytest.approx(report.money.spent_by_hand, abs=1e-7)
    assert report.money.saved_metrics == pytest.approx(report.money.saved_by_hand, abs=1e-7)
    assert report.money.saved_metrics > 0
    distinct = len(set(itertools.islice(workload.asks, 60)))
    assert report.upstream_calls <= distinct


async def test_the_replay_sends_each_request_once_in_order_and_stops_at_its_time_bound() -> None:
    workload = generate(Shape(requests=30), 2, PAIRS)
    upstream = PricedUpstream()
    url = await upstream.start()
    try:
        answers = await savings.replay(workload, "gpt-4o-mini", [url], 4, 60.0)
        assert [a.index for a in answers] == list(range(30))
        assert all(a.status == 200 and a.served == workload.asks[a.index] for a in answers)
        assert upstream.calls == Counter(workload.asks)
        assert await savings.replay(workload, "gpt-4o-mini", [url], 4, -1.0) == []
    finally:
        await upstream.close()
