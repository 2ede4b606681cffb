"""/metrics on the admin listener: the proxy's own counters, as Prometheus reads them."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from edgeproxy.config import parse
from edgeproxy.security.audit import AuditLog, DecisionCounter
from edgeproxy.security.budgets import BudgetLimits, RedisBudgets
from edgeproxy.state import build_state
from edgeproxy.telemetry.metrics import exposition
from tests.conftest import StackFactory
from tests.support.fake_upstream import Fail
from tests.support.redis_servers import HOST, free_port
from tests.support.stack import background_done

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_cache_and_routing_counters_are_scraped(make_stack: StackFactory) -> None:
    stack = await make_stack(cache={"enabled": True})
    stack.fake.script("chat", Fail(500))
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.post(stack.openai_url + "/chat/completions", json=CHAT) as r:
                await r.read()
            await background_done(stack)
    metrics = await scrape(stack.proxy.admin_url)
    deployment = (("deployment", "openai-up/gpt-4o-2024-08-06"),)
    assert metrics[("edgeproxy_cache_requests_total", (("outcome", "miss"),))] == 2
    assert metrics[("edgeproxy_cache_requests_total", (("outcome", "hit-l1"),))] == 1
    assert metrics[("edgeproxy_cache_lookups_total", (("layer", "l1"), ("result", "hit")))] == 1
    assert metrics[("edgeproxy_cache_entries", ())] == 1
    assert metrics[("edgeproxy_cache_stores_total", ())] == 1
    assert metrics[("edgeproxy_deployment_requests_total", deployment)] == 2
    assert metrics[("edgeproxy_deployment_failures_total", deployment)] == 1
    assert metrics[("edgeproxy_breaker_state", deployment)] == 0
    assert metrics[("edgeproxy_deployment_in_flight", deployment)] == 0
    assert metrics[("edgeproxy_background_dropped_total", ())] == 0


async def test_guardrail_decisions_and_lost_audit_records_are_scraped(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack()
    state = stack.proxy.state
    state.decisions = DecisionCounter({"shield"})
    state.decisions.count("shield", "block")
    state.decisions.count("unlisted", "flag")
    state.audit = AuditLog("-", max_pending=0)
    state.audit.record("req-1", None, "shield", "block")
    metrics = await scrape(stack.proxy.admin_url)
    decisions = "edgeproxy_guardrail_decisions_total"
    assert metrics[(decisions, (("action", "block"), ("rule", "shield")))] == 1
    assert metrics[(decisions, (("action", "flag"), ("rule", "other")))] == 1
    assert metrics[(decisions, (("action", "allow"), ("rule", "shield")))] == 0
    assert metrics[("edgeproxy_audit_lost_total", (("reason", "dropped"),))] == 1


async def test_budget_store_failures_are_counted_by_operation() -> None:
    state = build_state(parse({}, {}))
    assert b"edgeproxy_budget_backend_errors" not in exposition(state)  # no budgets, no family
    nobody = Redis(host=HOST, port=free_port(), protocol=2, retry=Retry(NoBackoff(), 0))
    try:
        state.budgets = RedisBudgets(nobody, "edgeproxy-test", timeout=2.0)
        await state.budgets.check([("key:k1", BudgetLimits(daily_usd=1.0))])
    finally:
        await nobody.aclose()
    samples = {
        (sample.name, tuple(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition(state).decode())
        for sample in family.samples
    }
    errors = "edgeproxy_budget_backend_errors_total"
    assert samples[(errors, (("operation", "check"),))] == 1
    assert samples[(errors, (("operation", "record"),))] == 0
