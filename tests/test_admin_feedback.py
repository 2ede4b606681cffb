"""GET /admin/recommendations: the recommender's answer, the query's bounds, the admin guard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from edgeproxy.admin import build_admin_app
from edgeproxy.admin_feedback import asked_bounds
from edgeproxy.config import Secret
from edgeproxy.pricing import PricingTable
from edgeproxy.redact import Redactor
from edgeproxy.routing.router import ModelTable
from edgeproxy.telemetry.feedback import Feedback
from edgeproxy.telemetry.feedback_settings import FeedbackSettings
from edgeproxy.telemetry.recommend import Bounds, Recommender
from edgeproxy.telemetry.served import ServedLedger
from tests.support.clock import ManualClock
from tests.support.serving import serving

TOKEN = "admin-token-0123456789"
CONFIGURED = Bounds(0.02, 0.25, 20)


def recommender() -> Recommender:
    settings = FeedbackSettings()
    taken = Feedback(ServedLedger(settings.window, 10, ManualClock()), settings, {})
    return Recommender(ModelTable((), {}), taken, PricingTable({}), CONFIGURED)


@asynccontextmanager
async def admin(token: str | None) -> AsyncIterator[str]:
    recommend = recommender()
    app = build_admin_app(
        lambda: True,
        dict,
        Secret(token) if token else None,
        redact=Redactor([TOKEN]),
        recommender=lambda: recommend,
    )
    async with serving(app) as base:
        yield base + "/admin/recommendations"


async def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.json()


async def test_recommendations_answer_with_the_configured_bounds() -> None:
    async with admin(None) as url:
        assert await fetch(url) == (
            200,
            {
                "window_s": 3600.0,
                "bounds": {"quality_tolerance": 0.02, "latency_tolerance": 0.25, "min_count": 20},
                "groups": [],
            },
        )
        status, body = await fetch(url + "?quality_tolerance=0.1&min_count=5")
        assert (status, body["bounds"]["quality_tolerance"], body["bounds"]["min_count"]) == (
            200,
            0.1,
            5,
        )


async def test_recommendations_are_a_read_behind_the_admin_token() -> None:
    async with admin(TOKEN) as url:
        assert (await fetch(url))[0] == 401
        assert (await fetch(url, {"authorization": f"Bearer {TOKEN}"}))[0] == 200


@pytest.mark.parametrize(
    ("query", "answer"),
    [
        ({}, CONFIGURED),
        ({"quality_tolerance": "0.05"}, Bounds(0.05, 0.25, 20)),
        ({"latency_tolerance": "1", "min_count": "3"}, Bounds(0.02, 1.0, 3)),
        ({"quality_tolerance": "-0.1"}, "quality_tolerance: expected a number >= 0"),
        ({"quality_tolerance": "nan"}, "quality_tolerance: expected a number >= 0"),
        ({"latency_tolerance": "inf"}, "latency_tolerance: expected a number >= 0"),
        ({"latency_tolerance": "fast"}, "latency_tolerance: expected a number >= 0"),
        ({"min_count": "0"}, "min_count: expected an integer >= 1"),
        ({"min_count": "2.5"}, "min_count: expected an integer >= 1"),
    ],
)
def test_the_query_may_override_the_bounds(query: dict[str, str], answer: Bounds | str) -> None:
    assert asked_bounds(query, CONFIGURED) == answer


async def test_a_bad_bound_is_a_400_naming_it() -> None:
    async with admin(None) as url:
        assert await fetch(url + "?min_count=none") == (
            400,
            {"error": "min_count: expected an integer >= 1"},
        )
