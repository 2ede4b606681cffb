"""Fixtures of the telemetry tests: a background runner, and a webhook endpoint to post to."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from edgeproxy.background import Background
from tests.support.fake_shield import FakeShield


@pytest.fixture
async def background() -> AsyncIterator[Background]:
    runner = Background()
    yield runner
    await runner.drain(5)


@pytest.fixture
async def webhook() -> AsyncIterator[FakeShield]:
    """A scripted endpoint (the fake Shield serves any POST) that keeps each call's body,
    headers and path."""
    server = FakeShield()
    await server.start()
    yield server
    await server.close()
