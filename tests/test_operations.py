"""Every endpoint the proxy serves is known to every per-operation table: a new one cannot be
routed while its metrics, spans, guardrails or token estimates fail on it."""

from __future__ import annotations

import pytest

from edgeproxy.dialects.codec import operation_codec
from edgeproxy.operations import CLIENT_PATHS, Operation
from edgeproxy.routing.needs import needs_of
from edgeproxy.security.prompt_text import answer_texts, request_texts, stream_texts
from edgeproxy.security.settings import OPERATION_LABELS
from edgeproxy.telemetry.request_metrics import GENAI_OPERATIONS


@pytest.mark.parametrize("operation", list(Operation))
def test_each_operation_is_known_to_every_table(operation: Operation) -> None:
    label = operation.label
    assert operation in CLIENT_PATHS.values()
    assert label in GENAI_OPERATIONS and label in OPERATION_LABELS
    assert operation.dialect.value == operation_codec(operation).NAME
    assert list(request_texts(label, {})) == []
    assert list(answer_texts(label, {})) == []
    assert stream_texts(label, {}) == []
    assert needs_of(operation, {}, stream=False).prompt_tokens >= 0
