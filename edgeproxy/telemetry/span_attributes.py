"""What a request's spans say: their names and attributes, worked out from the raw values the
request recorded (telemetry/request_spans.py), in the exporter's thread, a batch at a time.

A request records only what it must then (ids, times, the values its attributes come from);
the rest waits for the batch: code run once per request on the event loop costs two to three
times what the same code costs run back to back over a batch. Names and attributes follow the
GenAI semantic conventions (docs/observability.md lists them); every name and string attribute
passes through the configuration's `Redactor`, so a client's model name or request id cannot
carry a credential into a trace. Most of them repeat from request to request (an operation, a
model, a deployment): each is worked out, masked, once and remembered, up to `remembered` of
them; only the request id is masked every time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from edgeproxy.dialects.neutral import Usage
from edgeproxy.operations import CLIENT_PATHS, Operation
from edgeproxy.redact import Redactor
from edgeproxy.routing.router import Deployment, ModelGroup
from edgeproxy.telemetry.request_metrics import GENAI_OPERATIONS, GENAI_PROVIDERS
from edgeproxy.telemetry.spans import Attributes, SharedAttributes

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ROUTES = {operation: path for path, operation in CLIENT_PATHS.items()}
# A stream the provider accepted, then failed with its own error event before any content.
_STREAM_ERROR_EVENT = "stream_error_event"

# A span's name, the attributes it shares with spans like it (remembered: the encoders encode
# them once), and its own.
Described = tuple[str, SharedAttributes, Attributes]
_Shared = tuple[str, SharedAttributes]
K = TypeVar("K")


class RequestValues(Protocol):
    """What a request recorded for its SERVER span (telemetry/request_spans.py's
    RequestSpans)."""

    operation: Operation
    model: str
    request_id: str
    stream: bool
    status: int
    attempts: int
    group: ModelGroup | None
    cache_status: str | None
    deployment: Deployment | None
    usage: Usage | None


class AttemptValues(Protocol):
    """What an upstream attempt recorded for its CLIENT span (AttemptSpan)."""

    deployment: Deployment
    model: str
    status: int  # the HTTP answer's, 0 when none came
    error: str | None  # the proxy's error code, or the exception's name
    success: bool
    usage: Usage | None


class SpanAttributes:
    """Names and attributes of one tracer's spans, secrets masked by `redactor` (its
    configuration's: it learns no secret later, so what it masked once stays masked)."""

    __slots__ = ("_attempts", "_deployments", "_lookups", "_remembered", "_requests", "_text")

    def __init__(self, redactor: Redactor, remembered: int = 4096) -> None:
        self._text: Callable[[str], str] = redactor.text
        self._remembered = remembered
        self._requests: dict[tuple[object, ...], _Shared] = {}
        self._attempts: dict[tuple[object, ...], _Shared] = {}
        self._lookups: dict[str | None, _Shared] = {}
        # Bounded: the configured deployments.
        self._deployments: dict[Deployment, tuple[Attributes, Attributes]] = {}

    def request(self, span: RequestValues) -> Described:
        """The SERVER span's name and attributes, the request over: all but its request id
        and token counts shared with the requests like it."""
        known = (
            span.operation,
            span.model,
            span.stream,
            span.group,
            span.deployment,
            span.cache_status,
            span.status,
            span.attempts,
        )
        found = self._requests.get(known)
        if found is None:
            found = _remember(self._requests, known, self._request_shared(span), self._remembered)
        own: Attributes = {"edgeproxy.request_id": self._text(span.request_id)}
        if span.usage is not None:
            _add_usage(own, span.usage)
        return found[0], found[1], own

    def attempt(self, span: AttemptValues, operation: Operation) -> Described:
        """A CLIENT span's name and attributes (the attempt over, for the request's
        `operation`): all but its token counts shared with the attempts like it."""
        known = (operation, span.deployment, span.model, span.status, span.error, span.success)
        found = self._attempts.get(known)
        if found is None:
            shared = self._attempt_shared(span, operation)
            found = _remember(self._attempts, known, shared, self._remembered)
        own: Attributes = {}
        if span.usage is not None:
            _add_usage(own, span.usage)
        return found[0], found[1], own

    def cache_lookup(self, status: str | None) -> Described:
        """The cache lookup span's name and attributes (`status`: its outcome, if any)."""
        found = self._lookups.get(status)
        if found is None:
            shared = {} if status is None else {"edgeproxy.cache.status": self._text(status)}
            found = _remember(
                self._lookups, status, (self._text("cache lookup"), shared), self._remembered
            )
        return found[0], found[1], {}

    def deployment(self, deployment: Deployment) -> tuple[Attributes, Attributes]:
        """Which provider and deployment `deployment` is, and where its attempts go (its host
        and port), secrets masked: worked out once each."""
        found = self._deployments.get(deployment)
        if found is None:
            text = self._text
            config = deployment.provider.config
            who: Attributes = {
                "gen_ai.provider.name": text(GENAI_PROVIDERS.get(config.kind, config.kind)),
                "edgeproxy.provider": text(config.name),
                "edgeproxy.deployment": text(deployment.name),
            }
            url = urlsplit(config.base_url)
            where: Attributes = {}
            if url.hostname:
                where["server.address"] = text(url.hostname)
                where["server.port"] = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
            found = self._deployments[deployment] = (who, where)
        return found

    def _request_shared(self, span: RequestValues) -> _Shared:
        text = self._text
        operation = GENAI_OPERATIONS[span.operation.label]
        model = text(span.model)
        shared: Attributes = {
            "gen_ai.operation.name": text(operation),
            "gen_ai.request.model": model,
            "http.request.method": "POST",
            "http.route": text(_ROUTES[span.operation]),
            "edgeproxy.stream": span.stream,
            "http.response.status_code": span.status,
            "edgeproxy.attempts": span.attempts,
        }
        if span.group is not None:
            shared["edgeproxy.model_group"] = text(span.group.name)
        if span.cache_status is not None:
            shared["edgeproxy.cache.status"] = text(span.cache_status)
        if span.deployment is not None:
            shared.update(self.deployment(span.deployment)[0])
        if span.status >= 500:  # a client's mistake (4xx) is no failure of the proxy's
            shared["error.type"] = str(span.status)
        return text(f"{operation} {model}"), shared

    def _attempt_shared(self, span: AttemptValues, operation: Operation) -> _Shared:
        text = self._text
        name = GENAI_OPERATIONS[operation.label]
        model = text(span.model)
        who, where = self.deployment(span.deployment)
        shared: Attributes = {
            "gen_ai.operation.name": text(name),
            "gen_ai.request.model": model,
            "http.request.method": "POST",
            **who,
            **where,
        }
        if span.status:
            shared["http.response.status_code"] = span.status
        error = _attempt_error(span)
        if error is not None:
            shared["error.type"] = error
        return text(f"{name} {model}"), shared


def _remember(remembered: dict[K, _Shared], known: K, found: _Shared, limit: int) -> _Shared:
    if len(remembered) >= limit:  # the few that vary add up
        remembered.clear()
    remembered[known] = found
    return found


def _attempt_error(span: AttemptValues) -> str | None:
    """What went wrong with an attempt (its `error.type`), None when nothing did."""
    if span.error is not None:  # no HTTP answer (the proxy's error code), or an exception
        return span.error
    if span.status >= 400:
        return str(span.status)
    if span.status and not span.success:
        return _STREAM_ERROR_EVENT
    return None


def _add_usage(attributes: Attributes, usage: Usage) -> None:
    attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
    attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
