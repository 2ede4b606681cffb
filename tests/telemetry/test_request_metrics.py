"""Request metrics after scripted traffic: exact counts, tokens and dollars, bounded labels,
and the cost of each answer in its `x-edgeproxy-cost-usd` header."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from edgeproxy.telemetry.histogram import Histogram
from edgeproxy.telemetry.request_metrics import SETTLE_AT, RequestMetrics
from edgeproxy.telemetry.stats import read
from tests.conftest import StackFactory
from tests.support.fake_upstream import Fail, Reply
from tests.support.records import record
from tests.support.stack import Stack, background_done
from tests.telemetry.test_metrics import scrape

# gpt-4o at the embedded table's prices: $2.50 per million input tokens, $10 per million output.
INPUT_PRICE, OUTPUT_PRICE = 2.5e-6, 10e-6
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}


async def ask(stack: Stack, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(stack.openai_url + "/chat/completions", json=body) as answer,
    ):
        return answer.status, dict(answer.headers), await answer.read()


def requests_total(metrics: dict[Any, float], **labels: str) -> float:
    """The sum of edgeproxy_requests_total over the series matching `labels`."""
    return sum(
        value
        for (name, series), value in metrics.items()
        if name == "edgeproxy_requests_total" and labels.items() <= dict(series).items()
    )


async def test_hits_misses_errors_and_streams_are_counted_exactly(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache={"enabled": True}, catch_all=False)
    stack.fake.default["chat"] = Reply(text="Hello!", prompt_tokens=1000, completion_tokens=200)
    for _ in range(3):  # one miss, then two hits
        await ask(stack, CHAT)
        await background_done(stack)
    await ask(stack, {**CHAT, "stream": True, "messages": [{"role": "user", "content": "S"}]})
    stack.fake.script("chat", Fail(429))
    await ask(stack, {**CHAT, "messages": [{"role": "user", "content": "busy?"}]})
    await ask(stack, {"model": "nope", "messages": CHAT["messages"]})
    metrics = await scrape(stack.proxy.admin_url)
    assert requests_total(metrics, route="chat", model_group="gpt-4o", cache="miss") == 3
    assert requests_total(metrics, route="chat", model_group="gpt-4o", cache="hit-l1") == 2
    assert requests_total(metrics, status="429") == 1
    assert requests_total(metrics, status="404", model_group="other", provider="none") == 1
    assert requests_total(metrics) == 6
    group = (("model_group", "gpt-4o"),)
    tokens = "edgeproxy_tokens_total"
    # The miss and the two hits carry usage; the stream did not ask for it (stream_options).
    assert metrics[(tokens, (*group, ("type", "input")))] == 3 * 1000
    assert metrics[(tokens, (*group, ("type", "output")))] == 3 * 200
    one = 1000 * INPUT_PRICE + 200 * OUTPUT_PRICE
    cost = metrics[("edgeproxy_cost_usd_total", (*group, ("provider", "openai-up")))]
    assert cost == pytest.approx(one)
    assert metrics[("edgeproxy_cache_saved_usd_total", group)] == pytest.approx(2 * one)
    duration = "edgeproxy_request_duration_seconds_count"
    assert metrics[(duration, (*group, ("route", "chat")))] == 6 - 1
    assert metrics[("edgeproxy_stream_chunk_gap_seconds_count", ())] >= 1  # reads, not events
    assert metrics[("edgeproxy_requests_in_flight", ())] == 0


async def test_made_up_model_names_add_no_series(make_stack: StackFactory) -> None:
    stack = await make_stack(catch_all=False)
    for n in range(1000):
        await ask(stack, {**CHAT, "model": f"bogus-{n}"})
    metrics = await scrape(stack.proxy.admin_url)
    names = {dict(series).get("model_group") for (name, series) in metrics if series}
    assert not any(name and name.startswith("bogus") for name in names)
    assert requests_total(metrics, model_group="other", status="404") == 1000


async def test_a_whole_answer_carries_its_cost(make_stack: StackFactory) -> None:
    stack = await make_stack()
    stack.fake.default["chat"] = Reply(text="Hi", prompt_tokens=12_000, completion_tokens=3_000)
    status, headers, _ = await ask(stack, CHAT)
    assert status == 200
    expected = 12_000 * INPUT_PRICE + 3_000 * OUTPUT_PRICE
    assert float(headers["x-edgeproxy-cost-usd"]) == pytest.approx(expected, abs=1e-8)


async def test_genai_semantic_convention_metrics_are_exported(make_stack: StackFactory) -> None:
    stack = await make_stack()
    stack.fake.default["chat"] = Reply(text="Hi", prompt_tokens=10, completion_tokens=5)
    await ask(stack, CHAT)
    metrics = await scrape(stack.proxy.admin_url)
    where = (
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_provider_name", "openai"),
        ("gen_ai_request_model", "gpt-4o"),
    )
    usage = "gen_ai_client_token_usage_sum"
    assert metrics[(usage, (*where, ("gen_ai_token_type", "input")))] == 10
    assert metrics[(usage, (*where, ("gen_ai_token_type", "output")))] == 5
    assert metrics[("gen_ai_client_operation_duration_seconds_count", where)] == 1


def test_histograms_merge_across_workers_by_adding() -> None:
    first, second = Histogram((0.1, 1.0)), Histogram((0.1, 1.0))
    for value in (0.05, 0.5, 5.0):
        first.observe(value)
    second.observe(0.05)
    first.merge(second)
    assert list(first.cumulative()) == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert first.sum == pytest.approx(5.6)
    with pytest.raises(ValueError, match="bounds"):
        first.merge(Histogram((1.0,)))


def test_records_still_waiting_to_be_counted_are_counted_by_every_reader() -> None:
    def fresh() -> RequestMetrics:
        metrics = RequestMetrics(groups=("g",), providers={"p": "openai"})
        for request_id in ("a", "b", "c"):
            metrics.observe(record(request_id=request_id))
        return metrics

    def scraped(metrics: RequestMetrics) -> float:
        (family,) = [f for f in metrics.families() if f.name == "edgeproxy_requests"]
        return sum(sample.value for sample in family.samples)

    def absorbed(metrics: RequestMetrics) -> float:
        into = metrics.empty_like()
        into.absorb(metrics.snapshot(), live=True)
        return sum(into.requests.values())

    assert scraped(fresh()) == 3
    assert absorbed(fresh()) == 3
    assert read(fresh(), 0.0).requests == 3


def test_a_full_batch_of_records_is_counted_without_a_reader() -> None:
    metrics = RequestMetrics(groups=("g",), providers={"p": "openai"})
    for index in range(SETTLE_AT):
        metrics.observe(record(request_id=str(index)))
    assert sum(metrics.requests.values()) == SETTLE_AT
