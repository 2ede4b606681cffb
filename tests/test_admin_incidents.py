"""`GET /admin/incidents` lists open and recent incidents, behind the admin token when one is
set (the admin middleware's rule for every read)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from edgeproxy.admin import build_admin_app
from edgeproxy.config_reader import Secret
from edgeproxy.redact import Redactor
from edgeproxy.telemetry.incident_settings import IncidentSettings
from edgeproxy.telemetry.incidents import IncidentManager
from tests.support.clock import ManualClock
from tests.support.incident_table import routing_table
from tests.support.serving import serving

TOKEN = "admin-token-0123456789"
RIGHT = {"authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def admin(token: str | None, manager: IncidentManager) -> AsyncIterator[str]:
    app = build_admin_app(
        lambda: True,
        dict,
        Secret(token) if token else None,
        redact=Redactor([TOKEN]),
        incidents=manager.listing,
    )
    async with serving(app) as base:
        yield base + "/admin/incidents"


async def get(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.json()


def manager_with_an_open_incident() -> IncidentManager:
    clock, table = ManualClock(), routing_table()
    manager = IncidentManager(IncidentSettings(), table, clock, clock)
    table.health["primary"].breaker.trip(clock(), 60.0)
    manager.evaluate(clock())
    return manager


@pytest.mark.parametrize(
    ("token", "sent", "status"),
    [
        (None, {}, 200),  # without a token, reads are open
        (TOKEN, {}, 401),
        (TOKEN, {"authorization": "Bearer wrong"}, 401),
        (TOKEN, RIGHT, 200),
    ],
)
async def test_incidents_are_listed_behind_the_admin_token(
    token: str | None, sent: dict[str, str], status: int
) -> None:
    async with admin(token, manager_with_an_open_incident()) as url:
        got, body = await get(url, sent)
    assert got == status
    if status == 200:
        assert [(i["kind"], i["name"], i["status"]) for i in body["open"]] == [
            ("breaker_open", "primary", "open")
        ]
        assert body["recent"] == []
