"""The status page in a real browser: headless Chromium loads `/ui` from a proxy that has
answered traffic, and the rendered page shows live figures, spend per model group and team,
the deployments and the incidents. A screenshot of each rendering is kept in
tests/artifacts/. The page itself answers anyone; its figures need the admin token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from edgeproxy.admin import build_admin_app
from edgeproxy.security.auth import hash_key
from edgeproxy.telemetry.stats import LiveStats
from tests.conftest import StackFactory
from tests.security.test_admin import serving
from tests.support.browser import Rendered, render, require_chromium
from tests.support.fake_upstream import Reply
from tests.support.stack import Stack, background_done

ARTIFACTS = Path(__file__).parent / "artifacts"
TOKEN = "admin-token-for-the-status-page"
KEY = "sk-ep-status-page-0123456789abcdef"
HOSTILE = '<img src=x onerror="document.title=1">'
TEAMS = {
    "auth": {
        "mode": "keys",
        "keys": [{"id": "viewer", "hash": hash_key(KEY), "team": "platform"}],
        "teams": {"platform": {}},
    }
}
NO_VALUE = "\u2013"  # an en dash: what the page shows where there is no value
HELLO = [{"role": "user", "content": "Hi"}]
STREAMED = [{"role": "user", "content": "Tell me more"}]
# gpt-4o at $2.50 per million input tokens and $10 per million output: 1000 in, 200 out.
ONE_ANSWER_USD = 1000 * 2.5e-6 + 200 * 10e-6


async def ask(stack: Stack, body: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession(headers={"authorization": f"Bearer {KEY}"}) as session,
        session.post(stack.openai_url + "/chat/completions", json=body) as answer,
    ):
        await answer.read()
        assert answer.status == 200
    await background_done(stack)  # the cache write, before the next identical request


async def traffic(stack: Stack) -> None:
    """A miss, two hits of it, and a stream that asks for its usage (another miss)."""
    stack.fake.default["chat"] = Reply(text="Hello!", prompt_tokens=1000, completion_tokens=200)
    for _ in range(3):
        await ask(stack, {"model": "gpt-4o", "messages": HELLO})
    stream_options = {"include_usage": True}
    await ask(
        stack,
        {"model": "gpt-4o", "messages": STREAMED, "stream": True, "stream_options": stream_options},
    )


def milliseconds(text: str) -> float:
    number, unit = text.split()
    return float(number) * (1000 if unit == "s" else 1)


def dollars(text: str) -> float:
    assert text.startswith("$"), text
    return float(text[1:])


def row_of(page: Rendered, body: str, name: str) -> list[str]:
    rows = {cells[0]: cells for cells in page.rows[body]}
    assert name in rows, f"{name!r} not in {body}: {sorted(rows)}"
    return rows[name]


async def test_the_page_shows_live_figures_of_a_proxy_with_traffic(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    browser = require_chromium()
    stack = await make_stack(
        cache={"enabled": True}, catch_all=False, admin={"token": TOKEN}, sections=TEAMS
    )
    await traffic(stack)
    page = await render(
        browser,
        f"{stack.proxy.admin_url}/ui#token={TOKEN}",
        ARTIFACTS / "status_page.png",
        tmp_path / "profile",
    )
    texts = page.texts
    assert texts["problem"] == ""
    assert texts["updated"].startswith("updated ")
    assert float(texts["rps"]) > 0
    assert texts["requests-total"] == "4"
    assert texts["latency-count"] == "4"
    p50, p99 = milliseconds(texts["p50"]), milliseconds(texts["p99"])
    assert 0 < p50 <= p99 < 10_000
    overhead = milliseconds(texts["overhead-p50"]), milliseconds(texts["overhead-p99"])
    assert 0 < overhead[0] <= overhead[1] <= p99
    assert texts["hit-rate"] == texts["hit-rate-total"] == "50.0%"  # two hits, two misses
    assert dollars(texts["saved"]) == round(2 * ONE_ANSWER_USD, 4)
    assert dollars(texts["spend-total"]) == round(2 * ONE_ANSWER_USD, 4)
    assert texts["spend-hour"] == NO_VALUE  # not before a minute of uptime
    group = row_of(page, "groups", "gpt-4o")
    assert group[1:3] == ["4", texts["spend-total"]]
    assert group[5:] == ["4000", "800"]  # every answer carries its usage, hits included
    assert row_of(page, "teams", "platform")[1:3] == ["4", texts["spend-total"]]
    deployment = row_of(page, "deployments", "openai-up/gpt-4o-2024-08-06")
    assert deployment[1:3] == ["gpt-4o", "closed"]
    assert milliseconds(deployment[4]) > 0
    assert deployment[5:] == ["100.0%", "2", "0"]
    assert len(page.rows["deployments"]) == 7  # every configured deployment
    assert texts["incidents"] == "none"  # detection runs (on by default), nothing open
    assert (ARTIFACTS / "status_page.png").read_bytes().startswith(b"\x89PNG")


async def test_without_the_token_the_page_loads_but_its_figures_are_refused(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    browser = require_chromium()
    stack = await make_stack(admin={"token": TOKEN})
    admin = stack.proxy.admin_url
    async with aiohttp.ClientSession() as session:
        async with session.get(admin + "/admin/stats") as stats:
            assert stats.status == 401
        async with session.get(admin + "/ui") as ui:
            assert ui.status == 200
            assert ui.headers["content-type"] == "text/html; charset=utf-8"
    page = await render(
        browser, admin + "/ui", ARTIFACTS / "status_page_no_token.png", tmp_path / "profile"
    )
    assert page.texts["problem"] == "The admin token is required to read the figures (HTTP 401)."
    assert page.texts["rps"] == NO_VALUE
    assert page.texts["updated"] == "no figures yet"


async def test_names_from_the_configuration_are_shown_as_text_never_as_markup(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    browser = require_chromium()
    hostile_group = {HOSTILE: {"deployments": [{"provider": "mock", "name": HOSTILE}]}}
    stack = await make_stack(catch_all=False, sections={"models": hostile_group})
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            stack.openai_url + "/chat/completions", json={"model": HOSTILE, "messages": HELLO}
        ) as answer,
    ):
        assert answer.status == 200
    page = await render(
        browser,
        stack.proxy.admin_url + "/ui",
        ARTIFACTS / "status_page_hostile_names.png",
        tmp_path / "profile",
    )
    assert row_of(page, "deployments", HOSTILE)[1] == HOSTILE
    assert row_of(page, "groups", HOSTILE)[1] == "1"
    assert "img" not in page.tags


async def test_open_incidents_are_listed_with_their_severity_and_what_to_do(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    browser = require_chromium()
    state = (await make_stack(catch_all=False)).proxy.state
    incident = {
        "id": "inc_0123456789abcdef",
        "kind": "error_rate",
        "scope": "deployment",
        "name": "openai-up/gpt-4o-2024-08-06",
        "severity": "critical",
        "opened_at": "2026-01-02T03:04:05.000Z",
        "summary": f"deployment {HOSTILE}: 62% of 40 requests failed",
        "suggested_action": "Check the provider's status.",
    }
    stats = LiveStats(state.requests, state.table, state.pipeline.clock, lambda: [incident])
    app = build_admin_app(
        lambda: True, state.routing_status, None, redact=state.redactor, stats=lambda: stats
    )
    async with serving(app) as admin:
        page = await render(
            browser, admin + "/ui", ARTIFACTS / "status_page_incident.png", tmp_path / "profile"
        )
    assert page.texts["incidents"] == (
        f"critical deployment {HOSTILE}: 62% of 40 requests failed — since "
        "2026-01-02T03:04:05.000Z"  # then the suggested action, on a line of its own
        "Check the provider's status."
    )
    assert "img" not in page.tags


async def test_the_page_loads_nothing_from_anywhere_else(make_stack: StackFactory) -> None:
    stack = await make_stack()
    async with (
        aiohttp.ClientSession() as session,
        session.get(stack.proxy.admin_url + "/ui") as ui,
    ):
        page = await ui.text()
        policy = ui.headers["content-security-policy"]
    assert '<meta charset="utf-8">' in page
    assert "://" not in page and "src=" not in page  # no URL of any other origin, no source
    assert policy.startswith("default-src 'none'; script-src 'sha256-")
    assert "connect-src 'self'" in policy
