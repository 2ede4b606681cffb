"""Errors as small values: a status, a dialect-neutral code and a client-safe message.

Stages return a `ProxyError` as their reply; I/O code may raise one. Either way it is rendered
only at the edge, in the dialect the client speaks (see `edgeproxy.dialects`). `detail` is for
the log and never reaches the client; neither field may ever hold a credential.
"""

from __future__ import annotations

import math
from collections.abc import Callable


class ProxyError(Exception):
    """A failure the proxy answers with, carrying everything the edge needs to render it."""

    __slots__ = (
        "code",
        "detail",
        "headers_for",
        "message",
        "param",
        "retry_after",
        "retryable",
        "status",
    )

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        retry_after: float | None = None,
        retryable: bool = False,
        detail: str = "",
        headers_for: Callable[[str], list[tuple[str, str]]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.retry_after = retry_after
        self.retryable = retryable
        self.detail = detail
        # Headers that depend on the client's dialect (rate limits), given its name.
        self.headers_for = headers_for

    def __repr__(self) -> str:
        return f"ProxyError({self.status}, {self.code!r}, {self.message!r})"


def bad_request(message: str, *, param: str | None = None) -> ProxyError:
    return ProxyError(400, "invalid_request", message, param=param)


def invalid_json(detail: str) -> ProxyError:
    return ProxyError(400, "invalid_json", "The request body is not valid JSON.", detail=detail)


def json_too_deep(limit: int) -> ProxyError:
    return ProxyError(
        400,
        "json_too_deep",
        f"The request body nests objects and arrays more than {limit} levels deep, "
        "more than this proxy accepts.",
    )


def missing_field(field: str, expected: str) -> ProxyError:
    return ProxyError(400, "invalid_request", f"{field}: {expected}", param=field.partition(".")[0])


def payload_too_large(limit: int) -> ProxyError:
    return ProxyError(
        413,
        "request_too_large",
        f"The request body is larger than this proxy accepts ({limit} bytes).",
    )


# The listener's own refusals (malformed or oversized requests, slow clients), by status.
_REFUSALS = {
    400: "invalid_request",
    408: "request_timeout",
    413: "request_too_large",
    414: "uri_too_long",
    431: "headers_too_large",
    501: "not_implemented",
    505: "http_version_not_supported",
}


def refused(status: int, message: str) -> ProxyError:
    """What the HTTP listener answers by itself, before any handler saw the request."""
    return ProxyError(status, _REFUSALS.get(status, "internal_error"), message)


def unsupported_encoding(coding: str) -> ProxyError:
    return ProxyError(
        415,
        "unsupported_encoding",
        f"Content-Encoding {coding!r} is not supported; send gzip, deflate or identity.",
    )


def undecodable_body(coding: str) -> ProxyError:
    return ProxyError(
        400, "invalid_request", f"The request body is not valid {coding}-encoded data."
    )


def route_not_found(path: str) -> ProxyError:
    return ProxyError(404, "not_found", f"No such endpoint: {path}")


def method_not_allowed(method: str, path: str) -> ProxyError:
    return ProxyError(405, "method_not_allowed", f"{method} is not allowed on {path}")


def previous_response_not_found(answer_id: str) -> ProxyError:
    """A Responses request continues an answer this caller was not given (OpenAI's own
    refusal of an unknown `previous_response_id`, word for word in kind)."""
    return ProxyError(
        400,
        "previous_response_not_found",
        f"Previous response with id '{answer_id[:200]}' not found.",
        param="previous_response_id",
    )


def background_unmetered() -> ProxyError:
    """A background Responses request from a caller with a budget or token limits."""
    return ProxyError(
        400,
        "invalid_request",
        "Background responses cannot be charged to this key's budget or token limits: their usage "
        "is known only once they finish. Send the request without `background`.",
        param="background",
    )


def passthrough_not_allowed(key_id: str) -> ProxyError:
    """A key not listed in `passthrough.keys` asks for a path only passed through."""
    return ProxyError(
        403,
        "permission_denied",
        f"Key {key_id} may not use the paths this proxy forwards unmetered (passthrough.keys).",
    )


def stored_response_not_found(answer_id: str) -> ProxyError:
    """A stored-response call names an answer this caller cannot reach through the proxy."""
    return ProxyError(404, "not_found", f"Response with id '{answer_id[:200]}' not found.")


def unknown_request_id(request_id: str, window: float) -> ProxyError:
    """Feedback names no answer this proxy remembers serving to this caller: never served,
    served to another key, failed, or older than the `window` (seconds) it remembers."""
    return ProxyError(
        404,
        "request_not_found",
        f"No answer with request id '{request_id}' was served to this caller in the last "
        f"{_duration(window)}.",
        param="request_id",
    )


def feedback_exists(request_id: str) -> ProxyError:
    """Different feedback for an answer already rated: the first word stands."""
    return ProxyError(
        409,
        "feedback_exists",
        f"The answer with request id '{request_id}' already has different feedback; "
        "feedback cannot be changed.",
        param="request_id",
    )


def model_not_found(model: str) -> ProxyError:
    return ProxyError(
        404,
        "model_not_found",
        f"The model '{model}' is not configured on this proxy.",
        param="model",
    )


def missing_key() -> ProxyError:
    return ProxyError(
        401,
        "missing_api_key",
        "This proxy needs an API key: send it as `Authorization: Bearer <key>` or `x-api-key`.",
    )


def invalid_key() -> ProxyError:
    """A key that is unknown or revoked: the two are not told apart, and the key is never
    echoed (OpenAI's own answer quotes part of it)."""
    return ProxyError(401, "invalid_api_key", "The API key is not valid for this proxy.")


def model_not_allowed(model: str) -> ProxyError:
    return ProxyError(
        403,
        "model_not_allowed",
        f"This API key may not use the model '{model}'.",
        param="model",
    )


def too_many_messages(limit: int) -> ProxyError:
    return ProxyError(
        400,
        "too_many_messages",
        f"The request has more than {limit} messages, more than this key's policy allows.",
        param="messages",
    )


def prompt_too_long(limit: int) -> ProxyError:
    return ProxyError(
        413,
        "prompt_too_long",
        f"The prompt has more than {limit} characters, more than this key's policy allows.",
        param="messages",
    )


def unsupported_route(model: str, provider: str, endpoint: str) -> ProxyError:
    return ProxyError(
        400,
        "unsupported_endpoint",
        f"The model '{model}' is served by provider '{provider}', which cannot answer "
        f"{endpoint} (its API has no such endpoint, natively or by translation).",
        param="model",
    )


def unknown_strategy(value: str, allowed: tuple[str, ...]) -> ProxyError:
    return ProxyError(
        400,
        "invalid_request",
        f"x-edgeproxy-strategy: unknown strategy {value[:40]!r} (allowed: {', '.join(allowed)}).",
    )


def unfit_request(model: str, reason: str, *, context: bool) -> ProxyError:
    """No deployment of `model` (nor of its fallbacks) can take this request at all."""
    return ProxyError(
        400,
        "context_length_exceeded" if context else "invalid_request",
        f"No deployment of model '{model}' can serve this request: {reason}.",
        param="messages" if context else None,
    )


def rate_limited_everywhere(model: str, retry_after: float) -> ProxyError:
    """Every deployment of `model` and its fallbacks is kept out by its provider's rate limit
    (a 429's retry-after still running): the 429 a provider would have sent, so code that
    handles rate limits sees one. Rendered as `rate_limit_error` in either dialect, with
    OpenAI's code `rate_limit_exceeded`."""
    return ProxyError(
        429,
        "rate_limit_exceeded",
        f"Every deployment of model '{model}' is rate-limited by its provider; retry after "
        "the time in the retry-after header.",
        retry_after=max(1.0, retry_after),
        retryable=True,
    )


def no_deployment_available(model: str, retry_after: float) -> ProxyError:
    """Every deployment of `model` and its fallbacks is cooling down, open or at capacity, and
    not all of them only because of a provider's rate limit (see rate_limited_everywhere)."""
    return ProxyError(
        503,
        "no_deployment_available",
        f"No deployment of model '{model}' is available right now (circuit open, cooling down "
        "after a rate limit, or at its configured capacity); retry later.",
        retry_after=max(1.0, retry_after),
        retryable=True,
    )


def caller_rate_limited(
    scope: str,
    limit: str,
    retry_after: float,
    headers_for: Callable[[str], list[tuple[str, str]]],
) -> ProxyError:
    """A caller's own limit (its key's, its team's, or the model group's) refused the request;
    `headers_for` renders the dialect's rate-limit headers. OpenAI's code, retryable."""
    per = {"rpm": "requests per minute", "tpm": "tokens per minute"}.get(limit, "")
    what = f"{limit.upper()} ({per})" if per else "requests in flight"
    return ProxyError(
        429,
        "rate_limit_exceeded",
        f"Rate limit reached for {scope.replace(':', ' ', 1)} on {what}; retry after the time "
        "in the retry-after header.",
        retry_after=max(0.001, retry_after),
        retryable=True,
        headers_for=headers_for,
    )


def request_too_large_for_limit(
    scope: str, headers_for: Callable[[str], list[tuple[str, str]]]
) -> ProxyError:
    """The request alone needs more tokens than the caller's whole tokens-per-minute limit:
    it can never pass, so it is not retryable."""
    return ProxyError(
        429,
        "rate_limit_exceeded",
        f"Request too large for {scope.replace(':', ' ', 1)}: it needs more tokens than its "
        "tokens-per-minute limit allows; send a shorter prompt or a smaller max_tokens.",
        headers_for=headers_for,
    )


def limiter_unavailable() -> ProxyError:
    """The shared limiter does not answer and limits are enforced closed."""
    return ProxyError(
        503,
        "limiter_unavailable",
        "Rate limits cannot be checked right now; retry later.",
        retry_after=1.0,
        retryable=True,
    )


def shutting_down() -> ProxyError:
    """The proxy is stopping and its grace for requests in flight ran out: another instance
    (or this pod's replacement) can answer the same request."""
    return ProxyError(
        503, "shutting_down", "The proxy is shutting down; retry the request.", retryable=True
    )


def budget_exceeded(scope_label: str, period: str, limit_usd: float, reset_in: float) -> ProxyError:
    """A key's or team's spend reached its limit for the `period` (day, month) that ends in
    `reset_in` seconds. Not retryable: retrying before the reset only fails again, so the
    edge should tell SDKs so (`x-should-retry: false`); OpenAI clients see the type and code
    of OpenAI's own exhausted quota. `scope_label` names the key or team, never its secret."""
    return ProxyError(
        429,
        "budget_exceeded",
        f"Budget exceeded for {scope_label}: ${limit_usd:,.2f} per {period}; "
        f"resets in {_duration(reset_in)}.",
        retry_after=max(1.0, reset_in),
    )


def budget_unavailable() -> ProxyError:
    """The budget store does not answer and budgets are enforced closed (fail closed)."""
    return ProxyError(
        503,
        "budget_unavailable",
        "Spend budgets cannot be checked right now; retry later.",
        retry_after=1.0,
        retryable=True,
    )


def _duration(seconds: float) -> str:
    """A wait as people read it: 2d5h, 3h12m, 12m30s, 45s."""
    total = max(1, math.ceil(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def upstream_unreachable(provider: str, detail: str) -> ProxyError:
    return ProxyError(
        502,
        "upstream_unreachable",
        f"Provider '{provider}' could not be reached.",
        retryable=True,
        detail=detail,
    )


def upstream_broken(provider: str, detail: str) -> ProxyError:
    return ProxyError(
        502,
        "upstream_protocol_error",
        f"Provider '{provider}' ended the response abnormally.",
        retryable=True,
        detail=detail,
    )


def upstream_redirected(provider: str, status: int, location: str) -> ProxyError:
    """A provider answered with a redirect. It is never followed (only configured URLs are
    requested) nor relayed: a `Location` may name an internal host the client should not learn
    of, and no provider API redirects, so the deployment is misconfigured or compromised."""
    return ProxyError(
        502,
        "upstream_redirect",
        f"Provider '{provider}' answered with a redirect ({status}), which this proxy does not "
        "follow.",
        retryable=True,
        detail=f"{status} to {location[:200]!r}",
    )


def upstream_timeout(provider: str, phase: str, seconds: float) -> ProxyError:
    return ProxyError(
        504,
        "upstream_timeout",
        f"Provider '{provider}' did not answer in time ({phase} timeout of {seconds:g}s).",
        retryable=True,
    )


def unsupported_parameter(field: str, provider: str, why: str = "") -> ProxyError:
    reason = f" ({why})" if why else ""
    return ProxyError(
        400,
        "unsupported_parameter",
        f"{field}: not supported by provider '{provider}'{reason}.",
        param=field.partition(".")[0].partition("[")[0],
    )


def guardrail_blocked(rule: str, message: str | None = None) -> ProxyError:
    """A guardrail refused the request or the answer. `rule` (its id) goes to the log only;
    `message`, when the guard gave one, is client-safe by contract. The code is Azure
    OpenAI's for its own content filter, so clients that handle that one handle this."""
    return ProxyError(
        400,
        "content_filter",
        message or "The request was refused by this proxy's content policy.",
        detail=f"blocked by guardrail {rule}",
    )


def guard_unavailable(detail: str) -> ProxyError:
    """A guard that must decide (fail-closed) gave no decision: refused, retryable."""
    return ProxyError(
        503,
        "guard_unavailable",
        "The content guard could not check this request; retry later.",
        retry_after=1.0,
        retryable=True,
        detail=detail,
    )


# Codes of errors a provider answered with, in neutral terms (set by each dialect's
# `parse_error`, rendered in the client's dialect): invalid_request, authentication_error,
# permission_denied, not_found, request_too_large, context_length_exceeded, rate_limited,
# overloaded, upstream_error, upstream_timeout.
UPSTREAM_CODES = frozenset(
    {
        "invalid_request",
        "authentication_error",
        "permission_denied",
        "not_found",
        "request_too_large",
        "context_length_exceeded",
        "rate_limited",
        "overloaded",
        "upstream_error",
        "upstream_timeout",
    }
)


def from_upstream(
    status: int,
    code: str,
    message: str,
    *,
    retry_after: float | None = None,
    detail: str = "",
) -> ProxyError:
    """An error a provider answered with, to be rendered in the client's dialect.

    `message` is the provider's own text, which is client-safe (providers never echo a full
    credential); `code` is one of UPSTREAM_CODES.
    """
    assert code in UPSTREAM_CODES, code
    return ProxyError(
        status,
        code,
        message,
        retry_after=retry_after,
        retryable=status in (408, 409, 429) or status >= 500,
        detail=detail,
    )


def key_store_unavailable() -> ProxyError:
    """The key store (Redis) cannot say whether a key is valid: not a 401, so a valid caller
    is not told its key is invalid, and retryable."""
    return ProxyError(
        503,
        "key_store_unavailable",
        "The proxy cannot check API keys right now; retry shortly.",
        retry_after=1.0,
        retryable=True,
    )
