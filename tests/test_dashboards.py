"""The Grafana dashboard and the Prometheus alert rules in configs/, against the real /metrics.

A proxy is driven through traffic that makes every metric family export samples (the cache on,
a stream, a provider error, a fallback, keys with a rate limit and a budget that refuse, a
guardrail that blocks), then scraped. Every expression of the dashboard and of the alert rules
is parsed (tests/support/promql_check.py, on the promql-parser package): each metric it reads
must be a sample name of that scrape, each label it matches, groups by or matches on one those
samples carry, each counter read through rate() or increase(), and each label an alert's
annotations quote one its expression keeps. The files' structure is checked too, and the rules with
`promtool check rules` when Debian's prometheus package (which ships promtool) is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from edgeproxy.security.auth import hash_key
from tests.support.fake_upstream import Fail, Reply
from tests.support.loop_thread import LoopThread
from tests.support.stack import Stack, background_done, start_stack, stop_stack

try:
    from tests.support.promql_check import TARGET_LABELS, Scrape, check
except ImportError as exc:  # pragma: no cover - depends on the dev extras
    reason = f"the dashboard tests need promql-parser ({exc}); pip install -e '.[dev]'"
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DASHBOARD = CONFIGS / "grafana" / "edgeproxy-dashboard.json"
ALERTS = CONFIGS / "prometheus" / "edgeproxy-alerts.yaml"

# Grafana's own variables, as it expands them; the dashboard's variables stand for "All" (.*).
GRAFANA_VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
TEMPLATE_LABEL = re.compile(r"\$labels\.(\w+)")
LABEL_VALUES = re.compile(r"label_values\((\w+),\s*(\w+)\)")
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

PLAIN, LIMITED, SPENDER = (f"sk-ep-{name}-0123456789abcdef" for name in ("plain", "ltd", "spend"))
# gpt-4o at $2.50 per million input tokens: one answer costs $1, over the spender's budget.
ONE_DOLLAR = Reply(text="Hello!", prompt_tokens=400_000, completion_tokens=20)


def tenancy() -> dict[str, Any]:
    """Keys with a rate limit, a budget and neither, in two teams; a blocking guardrail."""
    return {
        "auth": {
            "mode": "keys",
            "keys": [
                {"id": "plain", "hash": hash_key(PLAIN), "team": "research"},
                {"id": "limited", "hash": hash_key(LIMITED), "team": "shop", "limits": {"rpm": 1}},
                {
                    "id": "spender",
                    "hash": hash_key(SPENDER),
                    "team": "shop",
                    "budget": {"daily_usd": 0.5},
                },
            ],
            "teams": {"shop": {}, "research": {}},
        },
        "guardrails": {
            "policies": {"strict": {"blocklist": {"mode": "block", "terms": ["Project Falcon"]}}},
            "default_policy": "strict",
        },
        "telemetry": {"metrics": {"key_labels": ["limited", "spender"]}},
    }


async def ask(stack: Stack, key: str, text: str, **extra: Any) -> int:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], **extra}
    headers = {"authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(stack.openai_url + "/chat/completions", json=body, headers=headers) as answer,
    ):
        await answer.read()
    await background_done(stack)  # cache writes and spend land before the next request
    return answer.status


async def retrieve(stack: Stack, key: str, answer_id: str) -> int:
    """A stored Responses answer asked for: a call forwarded, not an API request."""
    headers = {"authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{stack.openai_url}/responses/{answer_id}", headers=headers) as answer,
    ):
        await answer.read()
    return answer.status


async def drive(stack: Stack) -> list[int]:
    """Traffic that gives every family samples; the statuses, to show it did what it says."""
    stack.fake.default["chat"] = ONE_DOLLAR
    statuses = [
        await ask(stack, PLAIN, "Hi"),  # a miss
        await ask(stack, PLAIN, "Hi"),  # an L1 hit
        await ask(stack, PLAIN, "Stream", stream=True, stream_options={"include_usage": True}),
        await ask(stack, PLAIN, "Tell me about Project Falcon"),  # the guardrail blocks
        await ask(stack, LIMITED, "One"),
        await ask(stack, LIMITED, "Two"),  # over its rpm
        await ask(stack, SPENDER, "Spend"),
        await ask(stack, SPENDER, "Spend more"),  # over its budget
        await ask(stack, PLAIN, "Hi", model="no-such-model"),
    ]
    statuses.append(await retrieve(stack, PLAIN, "resp_never_given"))  # a forwarded call
    stack.fake.script("chat", Fail(500))  # gpt-4o fails: its fallback group answers
    statuses.append(await ask(stack, PLAIN, "Fall back"))
    stack.fake.script("chat", Fail(500))
    stack.fake.script("messages", Fail(500))  # and the fallback fails too
    statuses.append(await ask(stack, PLAIN, "Fail"))
    return statuses


async def scrape_text(stack: Stack) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(stack.proxy.admin_url + "/metrics") as response:
            return await response.text()


@pytest.fixture(scope="module")
def scrape() -> Iterator[Scrape]:
    """The proxy's /metrics after `drive`, started once for every expression checked."""
    with LoopThread() as loop:
        stack = loop.run(
            start_stack(
                cache={"enabled": True},
                catch_all=False,
                model_settings={"gpt-4o": {"fallbacks": ["claude-sonnet"]}},
                sections=tenancy(),
            )
        )
        try:
            statuses = loop.run(drive(stack))
            assert statuses == [200, 200, 200, 400, 200, 429, 200, 429, 404, 404, 200, 500]
            yield Scrape.parse(loop.run(scrape_text(stack)))
        finally:
            loop.run(stop_stack(stack))


def dashboard() -> Any:
    return json.loads(DASHBOARD.read_text())


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def panels() -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def variables() -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard()["templating"]["list"]}


def expand(expression: str) -> str:
    """A panel's expression as Grafana sends it with every variable at "All"."""
    own = variables()

    def value(found: re.Match[str]) -> str:
        name = found[1] or found[2]
        assert name in own or name in GRAFANA_VARIABLES, f"unknown variable ${name}"
        return GRAFANA_VARIABLES.get(name, ".*")

    return VARIABLE.sub(value, expression)


DASHBOARD_EXPRESSIONS = [
    pytest.param(target["expr"], id=f"{panel['title']} {target['refId']}")
    for panel in panels()
    for target in panel.get("targets", [])
]
ALERT_RULES = [pytest.param(rule, id=rule["alert"]) for rule in alert_rules()]


# --- expressions against the scrape -----------------------------------------------------------


@pytest.mark.parametrize("expression", DASHBOARD_EXPRESSIONS)
def test_dashboard_expressions_read_exported_metrics_and_labels(
    scrape: Scrape, expression: str
) -> None:
    walk = check(expand(expression), scrape)
    assert walk.metrics, "reads no metric"
    assert walk.problems == []


@pytest.mark.parametrize("rule", ALERT_RULES)
def test_alert_expressions_read_exported_metrics_and_labels(
    scrape: Scrape, rule: dict[str, Any]
) -> None:
    walk = check(rule["expr"], scrape)
    assert walk.metrics, "reads no metric"
    assert walk.problems == []
    assert walk.result is not None
    quoted = set(TEMPLATE_LABEL.findall(" ".join(rule["annotations"].values())))
    assert quoted <= walk.result, (
        f"annotations quote labels the alert lacks: {quoted - walk.result}"
    )


def test_dashboard_variables_list_exported_labels(scrape: Scrape) -> None:
    queried = [v for v in variables().values() if v["type"] == "query"]
    assert {v["name"] for v in queried} == {"model_group", "provider", "pod"}
    for variable in queried:
        found = LABEL_VALUES.fullmatch(variable["query"]["query"])
        assert found, variable["query"]
        metric, label = found.groups()
        assert label in scrape.labels[metric] | TARGET_LABELS, variable["name"]


# --- the checker catches what it should -------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("rate(edgeproxy_request_total[5m])", "edgeproxy_request_total: no such sample"),
        ('rate(edgeproxy_requests_total{statuz="500"}[5m])', "no label statuz"),
        ("sum by (team) (rate(edgeproxy_requests_total[5m]))", "sum by: no label team"),
        (
            "histogram_quantile(0.99,"
            " sum by (route) (rate(edgeproxy_proxy_overhead_seconds_bucket[5m])))",
            "histogram_quantile(...): no label le",
        ),
        (
            "histogram_quantile(0.99, rate(edgeproxy_proxy_overhead_seconds[5m]))",
            "edgeproxy_proxy_overhead_seconds: no such sample",
        ),
        (
            "sum by (route) (rate(edgeproxy_requests_total[5m]))"
            " / on (status) sum by (route) (rate(edgeproxy_requests_total[5m]))",
            "left of / on: no label status",
        ),
        ("sum(edgeproxy_requests_total)", "a counter read as it is"),
        ("rate(edgeproxy_requests_in_flight[5m])", "edgeproxy_requests_in_flight is a gauge"),
    ],
)
def test_the_checker_reports_mistakes(scrape: Scrape, expression: str, problem: str) -> None:
    problems = check(expression, scrape).problems
    assert any(problem in found for found in problems), problems


def test_the_checker_follows_labels_the_scrape_adds_and_aggregations_keep(scrape: Scrape) -> None:
    fine = (
        'up{job=~".*edgeproxy.*"} == 0',
        "histogram_quantile(0.5,"
        " sum by (le, pod) (rate(edgeproxy_upstream_ttfb_seconds_bucket[5m])))",
        "max by (deployment) (edgeproxy_breaker_state) > 0",
    )
    for expression in fine:
        assert check(expression, scrape).problems == [], expression


# --- the files' structure ---------------------------------------------------------------------


def test_every_dashboard_panel_has_queries_and_a_unique_id() -> None:
    found = panels()
    ids = [panel["id"] for panel in found]
    assert len(ids) == len(set(ids))
    for panel in found:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert all(target["datasource"] == DATASOURCE for target in panel["targets"])


def test_the_dashboard_stands_alone_on_a_datasource_variable() -> None:
    board = dashboard()
    datasource = variables()["DS_PROMETHEUS"]
    assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    assert board["uid"] and board["title"]
    assert "__inputs" not in board  # provisioning reads it as is: nothing left to fill in


def test_every_alert_rule_is_complete() -> None:
    loaded = yaml.safe_load(ALERTS.read_text())
    assert set(loaded) == {"groups"}
    rules = alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule.get("alert")
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(annotations), rule["alert"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_alert_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
