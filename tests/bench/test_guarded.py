"""The guarded scenarios' pure parts: the proxies' configs and what the proxy builds from them,
that the guards let the scenarios' requests through (redacting the one with personal data),
and how a run sets the guarded proxy against the plain one. The runs themselves are
`python -m bench --scenario guarded`."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import yaml

from bench import guarded, load
from bench.__main__ import GROUPS
from bench.guard_stages import GuardedProxy, guarded_state
from bench.load import Limits, RunResult
from bench.procs import Pinning
from bench.report import markdown
from bench.runner import PII_QUESTION, SCENARIOS, Sample, Settings, Target, proxy_config, summarize
from edgeproxy.config import Config, parse
from edgeproxy.security.auth import Authenticate, hash_key
from edgeproxy.security.limits import AdmitLimits
from edgeproxy.security.screen import Screen
from edgeproxy.security.spend import CheckBudget
from edgeproxy.state import build_state

UPSTREAM = "http://127.0.0.1:9000"
SETTINGS = Settings(2, Limits(100, 1.0), Limits(10, 0.5))


def _config(text: str) -> Config:
    return parse(yaml.safe_load(text), {})


def test_the_guarded_proxy_is_the_plain_one_plus_the_guards() -> None:
    plain = yaml.safe_load(proxy_config(8123, UPSTREAM))
    guarded_raw = yaml.safe_load(guarded.guarded_config(8123, UPSTREAM, "request"))
    assert {k: v for k, v in guarded_raw.items() if k in plain} == plain
    assert set(guarded_raw) - set(plain) == {"auth", "pricing", "guardrails"}


def test_the_key_is_the_loads_bearer_token_with_limits_and_a_budget_never_reached() -> None:
    security = _config(guarded.guarded_config(8123, UPSTREAM, "request")).security
    (key,) = security.auth.keys
    assert security.auth.mode == "keys"
    assert load.HEADERS["authorization"] == f"Bearer {guarded.KEY}"
    assert key.digest == hash_key(guarded.KEY)
    assert key.limits.rpm is not None and key.limits.rpm >= 10**9
    assert key.limits.tpm is not None and key.limits.tpm >= 10**12
    assert key.limits.parallel is not None and key.limits.parallel >= 10_000
    assert key.budget.daily_usd is not None and key.budget.daily_usd >= 10**6
    assert security.redis.url is None  # limits and spend counted in the proxy
    price = security.pricing.table.price("openai", "bench-upstream-model")
    assert price is not None and price.output > 0  # every answer is charged


@pytest.mark.parametrize(("guards", "output"), [("request", False), ("answers", True)])
def test_the_default_policy_screens_everything_and_answers_only_when_asked(
    guards: Any, output: bool
) -> None:
    guardrails = _config(guarded.guarded_config(8123, UPSTREAM, guards)).security.guardrails
    policy = guardrails.policies[guardrails.default_policy or ""]
    assert policy.pii is not None and policy.pii.mode == "redact"
    assert policy.injection is not None and policy.injection.mode == "block"
    assert policy.blocklist is not None and policy.blocklist.terms == guarded.BLOCKED_TERMS
    assert (policy.max_messages, policy.max_prompt_chars) == (64, 100_000)
    assert (policy.output is not None) is output
    if policy.output is not None:
        assert (policy.output.mode, policy.output.kinds) == ("redact", ("secret",))


def test_the_proxy_built_from_it_has_every_guard_and_the_plain_one_none() -> None:
    state = build_state(_config(guarded.guarded_config(8123, UPSTREAM, "answers")))
    assert [type(s) for s in state.guards.before_route] == [Authenticate]
    assert [type(s) for s in state.guards.after_route] == [AdmitLimits, CheckBudget, Screen]
    plain = build_state(_config(proxy_config(8123, UPSTREAM)))
    assert plain.guards.before_route == plain.guards.after_route == ()


@pytest.mark.parametrize("name", guarded.SCENARIOS)
async def test_every_guard_lets_the_scenarios_request_through(name: str) -> None:
    scenario = SCENARIOS[name]
    assert scenario.guards is not None
    proxy = GuardedProxy(guarded_state(scenario.guards))
    (body,) = scenario.bodies()
    exchange = proxy.exchange(body)
    exchange.caller = None
    guards = proxy.state.guards
    for stage in (*guards.before_route, *guards.after_route):
        assert await stage(exchange) is None, type(stage).__name__
    assert exchange.caller is not None and exchange.caller.id == guarded.KEY_ID
    assert exchange.charges is not None and len(exchange.charges) == 2
    redacted = name == "guarded-pii-c16"
    assert (exchange.body != body) is redacted
    assert b"jane.doe@example.com" not in exchange.body
    assert (exchange.answer_screen is not None) is (redacted or scenario.guards == "answers")


def test_the_scenarios_send_what_the_plain_ones_do_beside_the_plain_proxy() -> None:
    assert GROUPS["guarded"] == guarded.SCENARIOS
    same = {"guarded-c16": "nonstream-c16", "guarded-stream-c16": "stream-c16"}
    for name in guarded.SCENARIOS:
        scenario = SCENARIOS[name]
        assert scenario.references == ("plain",)
        assert scenario.cache is None and scenario.concurrency == 16
        if name in same:
            assert scenario.bodies() == SCENARIOS[same[name]].bodies()
    (pii,) = SCENARIOS["guarded-pii-c16"].bodies()
    assert orjson.loads(pii)["messages"][-1]["content"] == PII_QUESTION


def _sample(target: Target, cpu_seconds: float, latency_ms: float) -> Sample:
    """A run of 100 requests in one second, each taking `latency_ms`."""
    result = RunResult(issued=100, completed=100, seconds=1.0)
    result.latencies = [latency_ms / 1000] * 100
    return Sample(target, result, server_cpu=cpu_seconds, upstream_cpu=0.0, load_cpu=0.0)


def _guarded_row() -> dict[str, Any]:
    samples = [
        *(_sample("direct", 0.0, 1.0), _sample("proxy", 0.03, 1.6), _sample("plain", 0.02, 1.3)),
        *(_sample("plain", 0.025, 1.3), _sample("proxy", 0.04, 1.6), _sample("direct", 0.0, 1.0)),
    ]
    return summarize(SCENARIOS["guarded-c16"], SETTINGS, samples, rss_kib=[40_960])


def test_the_guards_cost_is_the_median_of_per_repetition_differences() -> None:
    row = _guarded_row()
    assert row["references"] == ["plain"]
    assert row["proxy_cpu_ms_per_request"] == pytest.approx(0.35)
    assert row["plain_cpu_ms_per_request"] == pytest.approx(0.225)
    assert row["proxy_cpu_added_over_plain_ms"] == pytest.approx(0.125)  # (0.1 + 0.15) / 2
    assert row["proxy_cpu_ratio_to_plain"] == pytest.approx(1.55)  # (1.5 + 1.6) / 2
    assert row["p50_plain_added_ms"] == pytest.approx(0.3)


def test_the_report_sets_the_guarded_proxy_against_the_plain_one() -> None:
    meta = {"measured": "edgeproxy", "git_commit": "abc", "cpu_model": "cpu", "cpus": 2}
    meta["references"] = {"floor": "not measured", "nginx": "not measured", "plain": "same"}
    text = markdown(
        [_guarded_row()], {**meta, "date": "today"}, SETTINGS, Pinning(None, None, None)
    )
    assert "**Tenancy and guardrails on the hot path" in text
    assert "| guarded-c16 | 16 | 0.350 | 0.225 | 0.125 | 1.55 | 100 | 100 | 0.60 | 0.30 |" in text
    assert "injection block" in text and "output rule" in text
    assert "Against the floor and nginx" not in text  # plain is not one of issue 11's
    assert "PROBLEMS" not in text
