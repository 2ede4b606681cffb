"""OpenAI error rendering: provider failures reach an OpenAI client worded as OpenAI words
them, with a status the SDK knows."""

from __future__ import annotations

import pytest

from edgeproxy import errors
from edgeproxy.dialects import openai
from edgeproxy.errors import ProxyError


@pytest.mark.parametrize(
    ("err", "kind", "code"),
    [
        (
            errors.from_upstream(400, "context_length_exceeded", "too long"),
            "invalid_request_error",
            "context_length_exceeded",
        ),
        (
            errors.from_upstream(400, "invalid_request", "bad"),
            "invalid_request_error",
            "invalid_request",
        ),
        (
            errors.from_upstream(401, "authentication_error", "bad key"),
            "invalid_request_error",
            "invalid_api_key",
        ),
        (
            errors.from_upstream(403, "permission_denied", "no"),
            "permission_error",
            "permission_denied",
        ),
        (errors.from_upstream(404, "not_found", "no model"), "invalid_request_error", "not_found"),
        (
            errors.from_upstream(413, "request_too_large", "big"),
            "invalid_request_error",
            "request_too_large",
        ),
        (errors.from_upstream(429, "rate_limited", "slow down"), "requests", "rate_limit_exceeded"),
        (errors.from_upstream(529, "overloaded", "Overloaded"), "server_error", "overloaded"),
        (errors.from_upstream(503, "overloaded", "busy"), "server_error", "overloaded"),
        (errors.from_upstream(500, "upstream_error", "boom"), "server_error", "upstream_error"),
        (errors.from_upstream(504, "upstream_timeout", "late"), "api_error", "upstream_timeout"),
        (errors.model_not_found("gpt-9"), "invalid_request_error", "model_not_found"),
        (errors.upstream_unreachable("openai", "refused"), "api_error", "upstream_unreachable"),
    ],
)
def test_errors_render_with_openais_type_and_code(err: ProxyError, kind: str, code: str) -> None:
    assert openai.error_object(err) == {
        "message": err.message,
        "type": kind,
        "param": err.param,
        "code": code,
    }


@pytest.mark.parametrize(
    ("status", "sent"), [(529, 503), (503, 503), (429, 429), (400, 400), (504, 504)]
)
def test_an_openai_client_never_sees_529(status: int, sent: int) -> None:
    assert openai.status_for(ProxyError(status, "overloaded", "x")) == sent
