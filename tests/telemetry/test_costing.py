"""Costing prices answers once per (provider kind, model), and says so once when it cannot."""

from __future__ import annotations

import logging

import pytest

from edgeproxy.pricing import PricingTable
from edgeproxy.telemetry.record import Costing


def test_an_unpriced_model_is_logged_once_and_the_free_mock_never(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="edgeproxy.pricing")
    costing = Costing(PricingTable({}))
    for _ in range(3):
        assert costing.price("openai", "gpt-unknown") is None
        assert costing.price("mock", "edgeproxy-mock") is None
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("no price for openai model gpt-unknown")
