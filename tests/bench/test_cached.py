"""The cache scenarios' pure parts: the proxies' configs, the distinct questions, the hit count
and its verdict, and how the report shows them; and that the semantic scenarios' paraphrases
really match their questions. The runs themselves are
`python -m bench --scenario l1-hit --scenario l2-hit --scenario semantic-hit`."""

from __future__ import annotations

import inspect
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web

from bench import cached, load
from bench.cached import CacheStatuses, RedisPrefix
from bench.load import Limits
from bench.procs import Pinning, free_port
from bench.report import markdown
from bench.runner import (
    CACHED_MODEL,
    L2_VARIANTS,
    MISS_VARIANTS,
    SCENARIO_GROUPS,
    SCENARIOS,
    SEMANTIC_DISTINCT,
    SEMANTIC_PAIRS,
    Settings,
    respaced,
)
from edgeproxy.cache.embed import EmbeddingsCache
from edgeproxy.config import parse
from tests.support.requires import require_semantic
from tests.support.serving import serving

UPSTREAM = "http://127.0.0.1:9000"
L2 = RedisPrefix("redis://127.0.0.1:6379/0", "edgeproxy-bench-test")


def test_l1_proxy_has_the_default_cache_without_redis() -> None:
    config = parse(yaml.safe_load(cached.proxy_config(8123, UPSTREAM, "l1", None)), {})
    assert config.cache.enabled
    assert config.cache.max_entries == 10_000
    assert not config.cache.redis.enabled
    (group,) = config.models
    assert group.name == CACHED_MODEL and group.cache
    assert config.server.port == 8123


def test_l2_proxy_keeps_one_entry_in_l1_over_redis_at_the_runs_prefix() -> None:
    config = parse(yaml.safe_load(cached.proxy_config(8123, UPSTREAM, "l2", L2)), {})
    assert config.cache.enabled and config.cache.max_entries == 1
    assert config.cache.redis.url == L2.url
    assert config.cache.redis.prefix == L2.prefix
    with pytest.raises(ValueError, match="Redis"):
        cached.proxy_config(8123, UPSTREAM, "l2", None)


def test_semantic_proxy_serves_semantic_hits_for_the_bench_group_only() -> None:
    config = parse(yaml.safe_load(cached.proxy_config(8123, UPSTREAM, "semantic", None)), {})
    assert config.cache.enabled and not config.cache.redis.enabled
    semantic = config.cache.semantic
    assert (semantic.mode, semantic.threshold, semantic.budget) == ("serve", 0.95, 1.0)
    (group,) = config.models
    assert group.name == CACHED_MODEL and group.cache and group.cache_semantic


def test_the_miss_scenario_asks_a_new_question_every_time_and_expects_misses() -> None:
    scenario = SCENARIOS["l1-miss-c16"]
    assert (scenario.cache, scenario.expected) == ("l1", "miss")
    bodies = scenario.bodies()
    assert len(set(bodies)) == len(bodies) == MISS_VARIANTS > 5 * 20_000 + 4000
    assert SCENARIOS["l1-hit-c16"].expected == "hit-l1"
    assert SCENARIOS["nonstream-c16"].expected is None


def test_report_sets_the_cost_of_a_miss_against_the_cache_off() -> None:
    misses = cached.hit_fields(SCENARIOS["l1-miss-c16"], Counter({"miss": 1000}))
    text = _report([_row("nonstream-c16", 0.2), _row("l1-miss-c16", 0.25, **misses)])
    assert "l1-miss-c16 0.250 ms proxy CPU per request against nonstream-c16 0.200 ms" in text
    assert "(+0.050 ms)" in text and "100.00 % miss" in text


def test_cache_scenarios_are_grouped_under_the_issues_names() -> None:
    for group, names in SCENARIO_GROUPS.items():
        assert {SCENARIOS[n].cache for n in names} == {group.removesuffix("-hit")}
        assert {SCENARIOS[n].concurrency for n in names} == {1, 16}
    assert {"semantic-hit-c1", "semantic-repeat-c16"} <= set(SCENARIO_GROUPS["semantic-hit"])


PAIRS_FILE = Path(__file__).resolve().parents[1] / "data" / "semantic_pairs.jsonl"


def test_semantic_pairs_are_labelled_the_same_question() -> None:
    labelled = {
        (pair["a"], pair["b"]): pair["same"]
        for pair in map(orjson.loads, PAIRS_FILE.read_bytes().splitlines())
    }
    assert all(labelled.get(pair) is True for pair in SEMANTIC_PAIRS)
    assert SEMANTIC_PAIRS[0] == ("How do I reset my password?", "How can I reset my password?")


def _user_turns(name: str) -> list[str]:
    return [orjson.loads(body)["messages"][-1]["content"] for body in SCENARIOS[name].bodies()]


def test_semantic_hit_texts_are_respaced_paraphrases_more_than_the_embeddings_cache_holds() -> None:
    held = inspect.signature(EmbeddingsCache).parameters["max_entries"].default
    texts = _user_turns("semantic-hit-c16")
    assert len(set(texts)) == len(texts) == SEMANTIC_DISTINCT > held
    paraphrases = [paraphrase for _, paraphrase in SEMANTIC_PAIRS]
    assert [text.rstrip() for text in texts[: len(paraphrases)]] == paraphrases
    assert {text.rstrip() for text in texts} == set(paraphrases)
    assert _user_turns("semantic-repeat-c1") == paraphrases
    # everything but the user turn is the same: one semantic partition for every question
    scenario = SCENARIOS["semantic-hit-c1"]
    shared = {orjson.dumps({**orjson.loads(b), "messages": []}) for b in scenario.bodies()[:20]}
    assert len(shared) == 1


async def test_each_paraphrase_matches_its_question_past_the_guard() -> None:
    """What the proxy decides, done here: cosine >= 0.95 (with a margin) and no refusal by the
    lexical guard, for each paraphrase as written and respaced."""
    require_semantic()
    from edgeproxy.cache.embed import LocalMiniLM
    from edgeproxy.cache.guard import Guard

    model, guard = LocalMiniLM(), Guard()
    for question, paraphrase in SEMANTIC_PAIRS:
        asked = [paraphrase, respaced(paraphrase, 1), respaced(paraphrase, 300)]
        stored, *vectors = await model.embed([question, *asked])
        for text, vector in zip(asked, vectors, strict=True):
            assert float(stored @ vector) >= 0.98, (question, text)
            assert guard.refusal(text, question) is None, (question, text)


def test_l2_questions_are_distinct_and_one_question_scenarios_unchanged() -> None:
    bodies = SCENARIOS["l2-hit-c16"].bodies()
    assert len(set(bodies)) == len(bodies) == L2_VARIANTS > 2 * 16  # > requests in flight
    (only,) = SCENARIOS["nonstream-c16"].bodies()
    payload = orjson.loads(only)
    assert payload["messages"][1]["content"] == "Summarise why sidecar proxies must be cheap."


def _answer(cache: str | None) -> Any:
    headers = {} if cache is None else {"x-edgeproxy-cache": cache}
    return SimpleNamespace(headers=headers)


def test_statuses_are_counted_and_too_few_hits_fail() -> None:
    statuses = CacheStatuses()
    for value in ["hit-l1"] * 98 + ["miss", None]:
        statuses(_answer(value), b"{}")
    assert statuses.counts == Counter({"hit-l1": 98, "miss": 1, "(none)": 1})
    fields = cached.hit_fields(SCENARIOS["l1-hit-c16"], statuses.counts)
    assert fields["cache_hit_share"] == 0.98 and not fields["cache_hits_ok"]
    problem = cached.hit_problem({"scenario": "l1-hit-c16", **fields})
    assert problem is not None and "98.00 %" in problem
    assert "do not measure hit-l1 answers" in problem
    statuses.counts["hit-l1"] += 200
    fields = cached.hit_fields(SCENARIOS["l1-hit-c16"], statuses.counts)
    assert fields["cache_hits_ok"]
    assert cached.hit_problem({"scenario": "l1-hit-c16", **fields}) is None


def test_no_answers_is_no_hit_and_other_rows_are_not_judged() -> None:
    fields = cached.hit_fields(SCENARIOS["l2-hit-c16"], Counter())
    assert fields["cache_hit_share"] is None and not fields["cache_hits_ok"]
    assert cached.hit_problem({"scenario": "nonstream-c16"}) is None
    failed = cached.not_measured(SCENARIOS["l1-hit-c1"], "failed", "boom")
    assert cached.hit_problem(failed) == "l1-hit-c1: boom"


def _row(name: str, cpu: float, other: float = 0.0, **extra: Any) -> dict[str, Any]:
    scenario = SCENARIOS[name]
    return {
        "scenario": name,
        "concurrency": scenario.concurrency,
        "proxy_cpu_ms_per_request": cpu,
        "p50_added_ms": 0.1,
        "other_cores_busy": other,
        "errors_direct": 0,
        "errors_proxy": 0,
        "stalled_direct": 0,
        "stalled_proxy": 0,
        "error_samples": [],
        **extra,
    }


def _report(rows: list[dict[str, Any]]) -> str:
    settings = Settings(5, Limits(20_000, 2.0), Limits(4000, 1.0))
    meta = {"measured": "edgeproxy", "git_commit": "abc", "cpu_model": "cpu", "cpus": 2}
    return markdown(rows, {**meta, "date": "today"}, settings, Pinning(None, None, None))


def test_report_judges_l1_hits_against_their_target_and_says_what_was_skipped() -> None:
    hits = cached.hit_fields(SCENARIOS["l1-hit-c16"], Counter({"hit-l1": 1000}))
    rows = [
        _row("l1-hit-c16", 0.12, **hits),
        _row("l1-hit-c1", 0.2, **hits),
        cached.not_measured(SCENARIOS["l2-hit-c16"], "skipped", "Redis not reachable"),
    ]
    text = _report(rows)
    assert "Target CPU ≤ 0.15 ms per L1 hit: l1-hit-c16 0.120 ms" in text
    assert "100.00 % hit-l1 — met." in text
    assert "l1-hit-c1 0.200 ms" in text and "MISSED" in text
    assert "l2-hit-c16: SKIPPED — Redis not reachable." in text
    assert "| l2-hit-c16 |" not in text  # not a row of the table
    assert "not measured yet" not in text and "semantic-hit cycles over 5,120" in text
    assert "PROBLEMS" not in text and "WARNING" not in text


def test_report_gives_semantic_hits_their_figures_and_how_they_were_embedded() -> None:
    rows = [
        _row(
            "semantic-hit-c16",
            10.3,
            rps_proxy=97.0,
            p99_added_ms=200.0,
            **cached.hit_fields(SCENARIOS["semantic-hit-c16"], Counter({"hit-semantic": 1000})),
        ),
        _row(
            "semantic-repeat-c1",
            0.5,
            rps_proxy=1000.0,
            p99_added_ms=1.0,
            **cached.hit_fields(
                SCENARIOS["semantic-hit-c16"], Counter({"hit-semantic": 95, "miss": 5})
            ),
        ),
    ]
    text = _report(rows)
    assert (
        "Semantic hit (each text embedded; no target): semantic-hit-c16 10.300 ms proxy CPU per "
        "request (≈ 97 RPS/core), 97 RPS, +p50 0.10 ms, +p99 200.00 ms, 100.00 % hit-semantic."
    ) in text
    assert "Semantic hit (embeddings-cache hits; no target): semantic-repeat-c1 0.500 ms" in text
    assert "NOT VALID" in text and "hit-semantic in 95.00 %" in text
    assert "5,120 distinct texts" in text


def test_report_flags_too_few_hits_and_a_busy_machine() -> None:
    few = cached.hit_fields(SCENARIOS["l1-hit-c16"], Counter({"hit-l1": 90, "miss": 10}))
    text = _report([_row("l1-hit-c16", 0.1, other=0.8, **few)])
    assert "NOT VALID" in text
    assert "PROBLEMS:" in text and "90.00 %" in text
    assert "WARNING, the machine was not quiet (over 0.1 core) during l1-hit-c16" in text


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    """A loopback server answering every POST with its body: `{"body": "..."}`."""

    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"body": (await request.read()).decode()})

    app = web.Application()
    app.router.add_post("/", handle)
    async with serving(app) as base:
        yield base + "/"


async def test_runs_keep_their_place_in_the_questions(echo: str) -> None:
    """A run that ends mid-cycle is followed by one that picks up after it, not from the first
    question again (which the one-entry L1 might still hold)."""
    sent: list[bytes] = []

    def observe(response: Any, data: bytes) -> None:
        sent.append(orjson.loads(data)["body"].encode())

    questions = itertools.cycle([b"a", b"b", b"c"])
    client = load.session(1)
    try:
        for requests in (2, 3):
            result = await load.run(
                client,
                echo,
                questions,
                stream=False,
                concurrency=1,
                limits=Limits(requests, 5.0),
                observe=observe,
            )
            assert result.completed == requests
    finally:
        await client.close()
    assert sent == [b"a", b"b", b"c", b"a", b"b"]


def test_a_redis_that_does_not_answer_is_a_reason_to_skip() -> None:
    port = free_port()  # nothing listens there
    with cached.redis_for_bench(f"redis://127.0.0.1:{port}/0") as found:
        assert isinstance(found, str) and "not reachable" in found
